"""Train tab: start, watch, stop and resume training runs from the browser.

Start queues `python -m training.train ...` (ui/jobs.py runs one at a time, as separate processes;
the command line is shown, to copy into a terminal). Every two seconds the tab reads what the
running CLI writes: progress.json (epoch, step, images/s, ETAs), history.json (the curves, one
point per epoch) and its output (the log tail). Stop sends SIGINT: the run checkpoints and can be
resumed. When a run finishes the app re-lists its models, so the new one is selectable at once.

Training from the browser is allowed only when the app listens on a loopback address, or with
`--allow-training` (app.py decides; this tab shows why it is off).
"""
from __future__ import annotations

import math
from functools import partial

import gradio as gr
import pandas as pd

from ui import inputs
from ui.catalog import TASK_TITLES
from ui.common import LIGHT_CONCURRENCY, user_error
from ui.curves_tab import CURVE_COLUMNS, history_rows
from ui.jobs import FINISHED, QUEUED, RUNNING, STOPPED, STOPPING, TrainingJobs, TrainRequest

VARIANTS = {"baseline": "Baseline", "random-erasing": "Random Erasing",
            "both": "Both (same initial weights and seed)"}
PRESETS = {"quick": "Quick (sized for a CPU)", "full": "Full recipe"}
JOB_COLUMNS = ["job", "run", "variant", "preset", "status", "progress", "val accuracy"]
POLL_SECONDS = 2.0
LIMITS = {"epochs": (1, 1000), "batch_size": (1, 4096), "seed": (0, 2 ** 31 - 1),
          "limit_train": (1, 10 ** 7), "limit_val": (1, 10 ** 7)}


class Trainer:
    """The jobs, plus whether this app may start them (and why not)."""

    def __init__(self, jobs: TrainingJobs | None, refused: str | None = None) -> None:
        self.jobs = jobs
        self.refused = refused if jobs is not None or refused else "this app has no runs folder to train into"

    def require(self) -> TrainingJobs:
        if self.refused:
            raise user_error(f"Training from the browser is off: {self.refused}")
        return self.jobs


# --- plain handlers (tests call these directly) ------------------------------------------------

def parse_request(task, variant, preset, epochs=None, batch_size=None, learning_rate=None, seed=None,
                  limit_train=None, limit_val=None) -> list[TrainRequest]:
    """The form's values -> one request per variant (two for "both"); gr.Error naming a bad field."""
    task = inputs.choice(task, "task", list(TASK_TITLES))
    variant = inputs.choice(variant, "variant", list(VARIANTS))
    preset = inputs.choice(preset, "preset", list(PRESETS))
    if inputs.from_browser():
        # The page sends 0 for a Number field left blank (Gradio 6's Number has no empty value once
        # another field changes). 0 is no valid epoch count, batch size, subset or learning rate,
        # and seed 0 is the CLI's default, so on the page 0 means "the preset's value".
        epochs, batch_size, learning_rate, seed, limit_train, limit_val = (
            None if v == 0 else v for v in (epochs, batch_size, learning_rate, seed, limit_train, limit_val))
    numbers = {}
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed),
                        ("limit_train", limit_train), ("limit_val", limit_val)):
        if value is None or value == "":
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise user_error(f"{name} must be a whole number from {LIMITS[name][0]} to {LIMITS[name][1]}, "
                             f"not {value!r}") from None
        low, high = LIMITS[name]
        if not number.is_integer() or not low <= number <= high:
            raise user_error(f"{name} must be a whole number from {low} to {high}, not {value!r}")
        numbers[name] = int(number)
    if learning_rate is not None and learning_rate != "":
        try:
            lr = float(learning_rate)
        except (TypeError, ValueError):
            raise user_error(f"learning_rate must be a number from above 0 to 10, not {learning_rate!r}") from None
        if not (math.isfinite(lr) and 0 < lr <= 10):
            raise user_error(f"learning_rate must be a number from above 0 to 10, not {learning_rate!r}")
        numbers["lr"] = lr
    erasing = {"baseline": [False], "random-erasing": [True], "both": [False, True]}[variant]
    return [TrainRequest(task=task, random_erasing=e, preset=preset, **numbers) for e in erasing]


def command_preview(trainer: Trainer, task, variant, preset, epochs=None, batch_size=None, learning_rate=None,
                    seed=None, limit_train=None, limit_val=None) -> str:
    """The command line(s) Start would run (run folder chosen at start: <runs>/<task>[-re]/<time>)."""
    try:
        requests = parse_request(task, variant, preset, epochs, batch_size, learning_rate, seed, limit_train,
                                 limit_val)
    except gr.Error as e:
        if not inputs.from_browser():      # an API caller hears the error; the page shows it as the preview
            raise
        return f"# {e.message}"
    lines = []
    for r in requests:
        folder = f"runs/{r.task}{'-re' if r.random_erasing else ''}/<start time>"
        lines.append(" ".join(["python -m training.train", *r.flags(), "--out", folder]))
    return "\n".join(lines)


def start_training(trainer: Trainer, task, variant, preset, epochs=None, batch_size=None, learning_rate=None,
                   seed=None, limit_train=None, limit_val=None) -> str:
    """Queue the run(s) asked for (two for variant "both": same seed, so the same initial weights)."""
    requests = parse_request(task, variant, preset, epochs, batch_size, learning_rate, seed, limit_train, limit_val)
    jobs = trainer.require()
    started = [jobs.submit(r) for r in requests]
    ahead = sum(1 for j in jobs.jobs if j.status in (RUNNING, STOPPING)) + \
        sum(1 for j in jobs.jobs if j.status == QUEUED and j.id < started[0].id)
    where = "starting now" if not ahead else f"queued behind {ahead} run(s)"
    return "; ".join(f"job {j.id}: `{j.key}` {where}" for j in started)


def stop_training(trainer: Trainer, job=None) -> str:
    """Stop the running job (or job number `job`): SIGINT, so it checkpoints; a queued one is dropped."""
    job_id = _job_id(job)
    jobs = trainer.require()
    try:
        job = jobs.stop(job_id)
    except LookupError as e:
        raise user_error(str(e)) from e
    if job.status == STOPPING:
        return (f"job {job.id}: SIGINT sent to `{job.key}`; it saves a checkpoint and stops (then Resume "
                f"continues it)")
    return f"job {job.id}: `{job.key}` taken off the queue"


def resume_training(trainer: Trainer, job=None) -> str:
    """Continue the latest stopped job (or job number `job`) from its checkpoint."""
    job_id = _job_id(job)
    jobs = trainer.require()
    try:
        job = jobs.resume(job_id)
    except LookupError as e:
        raise user_error(str(e)) from e
    return f"job {job.id}: resuming `{job.key}` from its checkpoint"


def _job_id(value) -> int | None:
    if value is None or value == "":
        return None
    return inputs.whole_number(value, "job", 1, 2**31 - 1)


def progress_markdown(trainer: Trainer) -> str:
    if trainer.refused:
        return f"⚠️ Training from the browser is off: {trainer.refused}."
    job = trainer.jobs.current()
    if job is None:
        return "No training run yet. Choose a task and press **Start**."
    p = job.progress()
    head = f"**{job.status.capitalize()}**: job {job.id}, `{job.key}` ({TASK_TITLES.get(job.request.task)}, " \
           f"{VARIANTS[job.variant].lower()}, {job.request.preset})"
    if job.status in (RUNNING, STOPPING) and p:
        facts = [f"epoch {p.get('epoch')}/{p.get('epochs')}", f"step {p.get('step')}/{p.get('steps_per_epoch')}",
                 f"{p['images_per_s']:.0f} images/s" if p.get("images_per_s") else "images/s: measuring",
                 f"epoch ETA {_clock(p.get('epoch_eta_s'))}", f"run ETA {_clock(p.get('run_eta_s'))}"]
        if p.get("last_val_accuracy") is not None:
            facts.append(f"last val accuracy {p['last_val_accuracy']:.2%}")
        if p.get("status") == "evaluating":
            facts.append("evaluating")
        return head + "\n\n" + " · ".join(facts)
    if job.status in (RUNNING, STOPPING):
        return head + "\n\nloading data and building the model…"
    message = p.get("message") or (job.log[-1] if job.log else "")
    return head + (f"\n\n{message}" if message else "")


def _clock(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def jobs_frame(trainer: Trainer) -> pd.DataFrame:
    rows = []
    for job in (trainer.jobs.jobs if trainer.jobs else []):
        p = job.progress()
        progress = f"epoch {p.get('epoch')}/{p.get('epochs')}, step {p.get('step')}/{p.get('steps_per_epoch')}" \
            if p and job.status not in (QUEUED,) else ""
        acc = p.get("last_val_accuracy") if p else None
        rows.append([job.id, job.key + (" (resume)" if job.resume else ""), VARIANTS[job.variant],
                     job.request.preset, job.status, progress, f"{acc:.2%}" if isinstance(acc, float) else ""])
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def training_status(trainer: Trainer):
    """(progress markdown, jobs table, accuracy frame, loss frame, log tail, command, finished count)."""
    job = trainer.jobs.current() if trainer.jobs else None
    acc, loss = history_rows(job.history(), job.key) if job else ([], [])
    log = "\n".join(list(job.log)[-40:]) if job else ""
    command = job.command() if job else ""
    return (progress_markdown(trainer), jobs_frame(trainer), pd.DataFrame(acc, columns=CURVE_COLUMNS),
            pd.DataFrame(loss, columns=CURVE_COLUMNS), log, command,
            trainer.jobs.finished_count if trainer.jobs else 0)


def status_signature(trainer: Trainer) -> tuple:
    """What changes when the Train tab must be redrawn (jobs, their states, progress, log length)."""
    if trainer.jobs is None:
        return ()
    return (trainer.jobs.finished_count,
            tuple((j.id, j.status, len(j.log), _mtime(j.run_dir / "progress.json"), _mtime(j.run_dir / "history.json"))
                  for j in trainer.jobs.jobs))


def _mtime(path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def poll(trainer: Trainer, last_signature=None):
    """The timer's handler: training_status when anything changed, else nothing redrawn (a page whose
    plots and table were re-rendered every two seconds would never sit still)."""
    signature = status_signature(trainer)
    if signature == last_signature:
        return [gr.skip()] * 7 + [last_signature]
    return [*training_status(trainer), signature]


# --- wiring ------------------------------------------------------------------------------------

def build(catalog, trainer: Trainer | None = None) -> gr.Number:
    """The tab; returns the hidden "runs finished" counter (the app re-lists its models when it changes)."""
    trainer = trainer or Trainer(None, "this app was built without a training queue")
    gr.Markdown("Train a model here: each run is `python -m training.train` in its own process, one at a "
                "time. Progress, curves and the log update live; **Stop** saves a checkpoint, **Resume** "
                "continues it; a finished model appears in the other tabs at once.")
    if trainer.refused:
        gr.Markdown(f"⚠️ Training from the browser is off: {trainer.refused}.", elem_classes=["notice"],
                    elem_id="train-refused")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            task = gr.Dropdown([(title, key) for key, title in TASK_TITLES.items()], value="mnist", label="Task")
            variant = gr.Radio([(title, key) for key, title in VARIANTS.items()], value="baseline", label="Variant")
            preset = gr.Radio([(title, key) for key, title in PRESETS.items()], value="quick", label="Preset")
            with gr.Accordion("Advanced (blank: the preset's value)", open=False, elem_id="train-advanced"):
                with gr.Row():
                    epochs = gr.Number(None, label="Epochs", precision=0)
                    batch_size = gr.Number(None, label="Batch size", precision=0)
                    lr = gr.Number(None, label="Learning rate")
                with gr.Row():
                    seed = gr.Number(None, label="Seed", precision=0)
                    limit_train = gr.Number(None, label="Training images (subset)", precision=0)
                    limit_val = gr.Number(None, label="Validation images (subset)", precision=0)
            command = gr.Code(command_preview(trainer, "mnist", "baseline", "quick"), language="shell",
                              label="Command (copy it to run in a terminal)", interactive=False,
                              elem_id="train-command")
            with gr.Row():
                start = gr.Button("Start", variant="primary", interactive=not trainer.refused, elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", interactive=not trainer.refused, elem_id="train-stop")
                resume = gr.Button("Resume", interactive=not trainer.refused, elem_id="train-resume")
            message = gr.Markdown(label="Message", elem_id="train-message")
        with gr.Column(scale=6):
            progress = gr.Markdown(progress_markdown(trainer), label="Progress", elem_id="train-progress")
            jobs_table = gr.Dataframe(jobs_frame(trainer), label="Runs asked for (in order)", interactive=False,
                                      elem_id="train-jobs")
            with gr.Row():
                acc_plot = gr.LinePlot(pd.DataFrame([], columns=CURVE_COLUMNS), x="epoch", y="value", color="series",
                                       y_lim=[0, 1], y_title="accuracy", label="Accuracy (per epoch)")
                loss_plot = gr.LinePlot(pd.DataFrame([], columns=CURVE_COLUMNS), x="epoch", y="value",
                                        color="series", y_title="loss", label="Loss (per epoch)")
            log = gr.Textbox(label="Log (latest lines)", lines=10, max_lines=10, autoscroll=True,
                             interactive=False, elem_id="train-log")
            running_command = gr.Textbox(label="Command of this run", interactive=False, buttons=["copy"])
            finished = gr.Number(0, visible=False, precision=0, label="Runs finished")

    form = [task, variant, preset, epochs, batch_size, lr, seed, limit_train, limit_val]
    gr.on([c.change for c in form], inputs.endpoint(command_preview, trainer, images=()), inputs=form,
          outputs=[command], api_name="train_command", preprocess=False, **LIGHT_CONCURRENCY)
    status_outputs = [progress, jobs_table, acc_plot, loss_plot, log, running_command, finished]
    status = partial(training_status, trainer)
    start.click(inputs.endpoint(start_training, trainer, images=()), inputs=form, outputs=[message],
                api_name="train_start", preprocess=False, **LIGHT_CONCURRENCY).then(status, outputs=status_outputs, api_name="train_start_status",
                                          api_visibility="private", **LIGHT_CONCURRENCY)
    job_box = gr.Number(None, visible=False, precision=0, label="Job number")   # API callers may name a job; the buttons mean "the current one"
    stop.click(inputs.endpoint(stop_training, trainer, images=()), inputs=[job_box], outputs=[message],
               api_name="train_stop", preprocess=False, **LIGHT_CONCURRENCY)
    resume.click(inputs.endpoint(resume_training, trainer, images=()), inputs=[job_box], outputs=[message],
                 api_name="train_resume", preprocess=False, **LIGHT_CONCURRENCY)
    seen = gr.State(None)   # the signature this page last drew
    timer = gr.Timer(POLL_SECONDS, active=not trainer.refused)
    timer.tick(partial(poll, trainer), inputs=[seen], outputs=[*status_outputs, seen], api_name="train_status",
               show_progress="hidden", **LIGHT_CONCURRENCY)
    return finished
