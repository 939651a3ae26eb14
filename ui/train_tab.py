"""Train tab: start, watch, stop and resume training runs, on a task's dataset or on your own images.

Start queues the command shown (ui/jobs.py, one process at a time); "Your images" trains `--task folder`
on an uploaded zip of class folders (ui/upload.py). Every two seconds the tab reads what the running CLI
writes (progress.json, history.json, its output). Stop (SIGINT) checkpoints; Resume continues; only the page
or client that started a job may do either. Training is on only on a loopback address or with
`--allow-training` (app.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import gradio as gr
import pandas as pd

from models.jsonfile import try_read_json
from models.registry import ARCHITECTURES
from models.tasks import QUICKEST_TASK, TASKS
from ui import inputs, upload
from ui.common import LIGHT_CONCURRENCY, user_error
from ui.curves_tab import CURVE_COLUMNS, curve_figure, history_rows
from ui.jobs import MAX_BATCH, MAX_EPOCHS, QUEUED, RUNNING, STOPPING, TrainingJobs, TrainRequest, command_line

VARIANTS = {"baseline": "Baseline", "random-erasing": "Random Erasing",
            "both": "Both (same initial weights and seed)"}
PRESETS = {"quick": "Quick (sized for a CPU)", "full": "Full recipe"}
# The Advanced fields are text boxes: a blank one stays blank and shows the preset's value in grey
# (a gr.Number shows 0 once the page has drawn it). The API takes numbers or text; blank: the preset's.
FIELDS = {"epochs": "Epochs", "batch_size": "Batch size", "learning_rate": "Learning rate", "seed": "Seed",
          "limit_train": "Training images (subset)", "limit_val": "Validation images (subset)"}
LIMITS = {"epochs": (1, MAX_EPOCHS), "batch_size": (1, MAX_BATCH), "seed": (0, 2 ** 31 - 1),
          "limit_train": (1, 10 ** 7), "limit_val": (1, 10 ** 7)}
JOB_COLUMNS = ["job", "run", "state"]
POLL_SECONDS = 2.0


@dataclass
class Trainer:
    """The jobs, plus why this app may not start them (None: it may)."""
    jobs: TrainingJobs
    refused: str | None = None

    def require(self) -> TrainingJobs:
        if self.refused:
            raise user_error(f"Training from the browser is off: {self.refused}")
        return self.jobs


# --- plain handlers (tests call these directly) ------------------------------------------------

def parse_request(task, variant, preset, epochs=None, batch_size=None, learning_rate=None, seed=None,
                  limit_train=None, limit_val=None, architecture=None, dataset=None) -> list[TrainRequest]:
    """The form's values -> one request per variant (two for "both"); gr.Error naming a bad field."""
    spec = TASKS[inputs.choice(task, "task", list(TASKS))]
    variant = inputs.choice(variant, "variant", list(VARIANTS))
    preset = inputs.choice(preset, "preset", list(PRESETS))
    arch = inputs.choice(architecture, "architecture", [spec.architecture, *spec.alternatives],
                         default=spec.architecture)
    given = {"epochs": epochs, "batch_size": batch_size, "seed": seed, "limit_train": limit_train,
             "limit_val": limit_val}
    numbers = {name: inputs.whole_number(value, name, *LIMITS[name])
               for name, value in given.items() if not _blank(value)}
    if not _blank(learning_rate):
        numbers["lr"] = inputs.real_number(learning_rate, "learning_rate", 1e-6, 10)
    dataset = inputs.text(dataset, "dataset")
    if spec.dataset.local and _blank(dataset):
        raise user_error("dataset is missing: upload a zip of class folders first (the id /train_upload returns)")
    return [TrainRequest(spec.name, erasing, preset, arch=None if arch == spec.architecture else arch,
                         dataset=dataset if spec.dataset.local else None, **numbers)
            for erasing in {"baseline": [False], "random-erasing": [True], "both": [False, True]}[variant]]


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def command_preview(trainer: Trainer, task, variant, preset, epochs=None, batch_size=None, learning_rate=None,
                    seed=None, limit_train=None, limit_val=None, architecture=None, dataset=None) -> str:
    """The command line(s) Start would run now, exactly (the run folder is named by the start time)."""
    public = None if trainer.refused is None else trainer.jobs.runs_dir     # a page that cannot train: no server paths
    try:
        return "\n".join(command_line(trainer.jobs.argv(r), public) for r in parse_request(
            task, variant, preset, epochs, batch_size, learning_rate, seed, limit_train, limit_val, architecture,
            dataset))
    except (gr.Error, LookupError) as e:
        message = e.message if isinstance(e, gr.Error) else str(e)
        if not inputs.from_browser():      # an API caller hears the error; the page shows it as the preview
            raise user_error(message) from e
        return f"# {message}"


def start_training(trainer: Trainer, task, variant, preset, epochs=None, batch_size=None, learning_rate=None,
                   seed=None, limit_train=None, limit_val=None, architecture=None, dataset=None,
                   request: gr.Request = None) -> str:
    """Queue the run(s) asked for (two for variant "both": same seed, so the same initial weights)."""
    requests = parse_request(task, variant, preset, epochs, batch_size, learning_rate, seed, limit_train, limit_val,
                             architecture, dataset)
    started = _act(trainer, "submit", requests, request)
    ahead = sum(j.status in (RUNNING, STOPPING) or (j.status == QUEUED and j.id < started[0].id)
                for j in trainer.jobs.jobs)
    return "; ".join(f"job {j.id}: `{j.key}` {f'queued behind {ahead} run(s)' if ahead else 'starting now'}"
                     for j in started)


def stop_training(trainer: Trainer, job=None, request: gr.Request = None) -> str:
    """Stop your running job (or your job number `job`): SIGINT, so it checkpoints; a queued one is dropped."""
    job = _act(trainer, "stop", _job_id(job), request)
    if job.status == STOPPING:
        return f"job {job.id}: SIGINT sent to `{job.key}`; it saves a checkpoint and stops (then Resume continues it)"
    return f"job {job.id}: `{job.key}` taken off the queue"


def resume_training(trainer: Trainer, job=None, request: gr.Request = None) -> str:
    """Continue your latest stopped job (or your job number `job`) from its checkpoint."""
    job = _act(trainer, "resume", _job_id(job), request)
    return f"job {job.id}: resuming `{job.key}` from its checkpoint"


def _job_id(value) -> int | None:
    return None if _blank(value) else inputs.whole_number(value, "job", 1, 2 ** 31 - 1)


def _act(trainer: Trainer, what: str, argument, request: gr.Request | None):
    """jobs.<what>(argument, owner): the owner is the page's (or gradio_client's) session, None in-process."""
    owner = None if request is None else (request.session_hash or f"anonymous {id(request)}")
    try:
        return getattr(trainer.require(), what)(argument, owner)
    except LookupError as e:
        raise user_error(str(e)) from e


def upload_zip(trainer: Trainer, zip_file) -> tuple[str, str]:
    """A zip of class folders -> (the classes and image counts found, the dataset id /train_start takes)."""
    if inputs.is_empty(zip_file):
        raise user_error(f"zip_file is missing: upload a .zip of class folders ({upload.MIN_IMAGES}+ images each)")
    try:
        upload_id, found = upload.unpack(zip_file, trainer.require().uploads)
    except upload.UploadError as e:
        raise user_error(f"zip_file: {e}") from e
    return found, upload_id


def task_options(task, preset, architecture=None) -> list:
    """The form for a task: the zip upload (your images), its architectures, and the Advanced fields'
    grey text (what a blank field means for this task, preset and architecture)."""
    if task not in TASKS or preset not in PRESETS:
        return [gr.skip()] * (2 + len(FIELDS))
    spec, choices, grey = _options(task, preset, architecture)
    return [gr.Group(visible=spec.dataset.local),
            gr.Radio(choices, value=spec.architecture if spec.alternatives else None, visible=bool(spec.alternatives)),
            *(gr.Textbox(placeholder=text) for text in grey)]


def _options(task: str, preset: str, architecture=None):
    """(the task as trained with `architecture`, the architectures it offers, the preset's values as text)."""
    spec = TASKS[task].with_architecture(architecture if architecture in TASKS[task].alternatives else None)
    recipe = spec.resolved_recipe(preset=preset)
    grey = (recipe["epochs"], recipe["batch_size"], f"{recipe['optimizer']['lr']:g}", 0, "all", "all")
    base = TASKS[task]
    return spec, [(ARCHITECTURES[a].title, a) for a in (base.architecture, *base.alternatives)], [str(v) for v in grey]


def progress_markdown(trainer: Trainer) -> str:
    if trainer.refused:
        return f"⚠️ Training from the browser is off: {trainer.refused}."
    job = trainer.jobs.current()
    if job is None:
        return "No training run yet. Choose a task and press **Start**."
    p = job.progress()
    variant = VARIANTS["random-erasing" if job.request.random_erasing else "baseline"]
    head = f"**{job.status.capitalize()}**: job {job.id}, `{job.key}` ({TASKS[job.request.task].title}, " \
           f"{variant.lower()}, {job.request.preset})\n\n"
    if job.status not in (RUNNING, STOPPING):
        return head + (p.get("message") or (job.log[-1] if job.log else ""))
    if not p:
        return head + "loading data and building the model…"
    acc = p.get("last_val_accuracy")
    return head + " · ".join(filter(None, [
        f"epoch {p.get('epoch')}/{p.get('epochs')}", f"step {p.get('step')}/{p.get('steps_per_epoch')}",
        f"{p['images_per_s']:.0f} images/s" if p.get("images_per_s") else "images/s: measuring",
        f"epoch ETA {_clock(p.get('epoch_eta_s'))}", f"run ETA {_clock(p.get('run_eta_s'))}",
        f"last val accuracy {acc:.2%}" if acc is not None else "",
        "evaluating" if p.get("status") == "evaluating" else ""]))


def _clock(seconds) -> str:
    return str(timedelta(seconds=round(seconds))) if isinstance(seconds, (int, float)) else "?"


def jobs_frame(trainer: Trainer) -> pd.DataFrame:
    """One row per job: its number, run folder and state (a few words, wrapped: the table fits a phone)."""
    rows = []
    for job in trainer.jobs.jobs:
        p = job.progress() if job.status != QUEUED else {}
        acc = p.get("last_val_accuracy")
        state = [job.status + (" (resume)" if job.resume else ""),
                 f"epoch {p.get('epoch')}/{p.get('epochs')}, step {p.get('step')}/{p.get('steps_per_epoch')}"
                 if p else "",
                 f"val accuracy {acc:.2%}" if isinstance(acc, float) else ""]
        rows.append([job.id, job.key, " · ".join(filter(None, state))])
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def training_status(trainer: Trainer):
    """(progress markdown, jobs table, accuracy figure, loss figure, log tail, command, finished count)."""
    job = trainer.jobs.current()
    acc, loss = history_rows(try_read_json(job.run_dir, "history.json"), job.key.split("/")[0]) if job else ([], [])
    empty = "no epoch finished yet: the curves start after the first" if job else "no run yet"
    return (progress_markdown(trainer), jobs_frame(trainer),
            *(curve_figure(pd.DataFrame(rows, columns=CURVE_COLUMNS), what, empty)
              for rows, what in ((acc, "accuracy"), (loss, "loss"))),
            "\n".join(list(job.log)[-40:]) if job else "", command_line(job.argv) if job else "",
            trainer.jobs.finished_count)


def poll(trainer: Trainer, last_signature=None):
    """The timer's handler: training_status when anything changed, else nothing redrawn (a page whose
    plots and table were re-rendered every two seconds would never sit still). Once a job has ended,
    the message of the last Start/Stop/Resume is cleared (it would say "resuming" forever)."""
    jobs = trainer.jobs.jobs
    ended = sum(j.ended is not None for j in jobs)
    signature = (ended, tuple((j.id, j.status, len(j.log), str(j.progress())) for j in jobs))
    if signature == last_signature:
        return [gr.skip()] * 8 + [last_signature]
    cleared = last_signature is not None and ended != last_signature[0]
    return [*training_status(trainer), "" if cleared else gr.skip(), signature]


# --- wiring ------------------------------------------------------------------------------------

def build(catalog, trainer: Trainer | None = None) -> gr.Number:
    """The tab; returns the hidden "runs finished" counter (the app re-lists its models when it changes)."""
    trainer = trainer or Trainer(TrainingJobs("runs"), "this app was built without a training queue")
    gr.Markdown("Train a model here: each run is `python -m training.train` in its own process, one at a "
                "time. Progress, curves and the log update live; **Stop** saves a checkpoint, **Resume** "
                "continues it; a finished model appears in the other tabs at once.")
    if trainer.refused:
        gr.Markdown(f"⚠️ Training from the browser is off: {trainer.refused}.", elem_classes=["notice"],
                    elem_id="train-refused")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            form, own, zip_file, found, command, message, (start, stop, resume) = _form(trainer)
        with gr.Column(scale=6, min_width=300):
            status_outputs = _status_panel(trainer)
    task, variant, preset, *fields, architecture, dataset = form
    gr.on([c.change for c in form], inputs.endpoint(command_preview, trainer, images=()), inputs=form,
          outputs=[command], api_name="train_command", preprocess=False, **LIGHT_CONCURRENCY)
    gr.on([task.change, preset.change, architecture.change], task_options, inputs=[task, preset, architecture],
          outputs=[own, architecture, *fields], api_name="train_task_options", api_visibility="private",
          preprocess=False, **LIGHT_CONCURRENCY)
    zip_file.upload(inputs.endpoint(upload_zip, trainer, images=()), inputs=[zip_file], outputs=[found, dataset],
                    api_name="train_upload", preprocess=False, **LIGHT_CONCURRENCY)
    zip_file.clear(lambda: ("", ""), outputs=[found, dataset], api_name="train_upload_cleared",
                   api_visibility="private")
    start.click(inputs.endpoint(start_training, trainer, images=()), inputs=form, outputs=[message],
                api_name="train_start", preprocess=False, **LIGHT_CONCURRENCY).then(
        partial(training_status, trainer), outputs=status_outputs, api_name="train_start_status",
        api_visibility="private", **LIGHT_CONCURRENCY)
    # API callers may name a job; the buttons mean "the current one".
    job_box = gr.Number(None, visible=False, precision=0, label="Job number")
    for button, handler, name in ((stop, stop_training, "train_stop"), (resume, resume_training, "train_resume")):
        button.click(inputs.endpoint(handler, trainer, images=()), inputs=[job_box], outputs=[message], api_name=name,
                     preprocess=False, **LIGHT_CONCURRENCY)
    seen = gr.State(None)   # the signature this page last drew
    gr.Timer(POLL_SECONDS, active=not trainer.refused).tick(
        partial(poll, trainer), inputs=[seen], outputs=[*status_outputs, message, seen], api_name="train_status",
        show_progress="hidden", **LIGHT_CONCURRENCY)
    return status_outputs[-1]


def _form(trainer: Trainer):
    """The left column: task (with the zip for your own images), variant, preset, Advanced, command, buttons."""
    task = gr.Dropdown([(spec.title, name) for name, spec in TASKS.items()], value=QUICKEST_TASK, label="Task",
                       elem_id="train-task")
    _, choices, grey = _options(QUICKEST_TASK, "quick")
    with gr.Group(visible=False) as own:
        zip_file = gr.File(label=f"Your images: a .zip of class folders, {upload.MIN_IMAGES}+ images each "
                                 "(<class>/<image>, or train/<class>/ and val/<class>/)", file_types=[".zip"],
                           elem_id="train-zip")
        found = gr.Markdown(label="What the zip holds", elem_id="train-found")
    architecture = gr.Radio(choices, value=None, visible=False, label="Architecture", elem_id="train-arch")
    variant = gr.Radio([(title, key) for key, title in VARIANTS.items()], value="baseline", label="Variant")
    preset = gr.Radio([(title, key) for key, title in PRESETS.items()], value="quick", label="Preset")
    with gr.Accordion("Advanced (blank: the preset's value, shown in grey)", open=False, elem_id="train-advanced"):
        with gr.Row():
            fields = [gr.Textbox(label=label, placeholder=text, max_lines=1, min_width=100,
                                 elem_id=f"train-{name.replace('_', '-')}")
                      for (name, label), text in zip(FIELDS.items(), grey)]
    dataset = gr.Textbox("", visible=False, label="Uploaded images (the id /train_upload returned)")
    command = gr.Textbox(command_preview(trainer, QUICKEST_TASK, "baseline", "quick"), lines=2, max_lines=8,
                         label="Command (exactly what Start runs: copy it into a terminal)", interactive=False,
                         buttons=["copy"], elem_id="train-command")
    with gr.Row():
        buttons = [gr.Button(label, variant=kind, interactive=not trainer.refused, elem_id=f"train-{label.lower()}")
                   for label, kind in (("Start", "primary"), ("Stop", "stop"), ("Resume", "secondary"))]
    message = gr.Markdown(label="Message", elem_id="train-message")
    return [task, variant, preset, *fields, architecture, dataset], own, zip_file, found, command, message, buttons


def _status_panel(trainer: Trainer) -> list:
    """The right column: progress, the jobs, the curves, the log, the command of the run shown."""
    progress = gr.Markdown(progress_markdown(trainer), label="Progress", elem_id="train-progress")
    jobs_table = gr.Dataframe(jobs_frame(trainer), label="Runs asked for (in order)", interactive=False, wrap=True,
                              column_widths=["15%", "38%", "47%"], elem_id="train-jobs")
    with gr.Row():
        plots = [gr.Plot(curve_figure(pd.DataFrame([], columns=CURVE_COLUMNS), what, "no run yet"), min_width=280,
                         label=f"{what.capitalize()} (per epoch)", elem_id=f"train-{what}")
                 for what in ("accuracy", "loss")]
    log = gr.Textbox(label="Log (latest lines)", lines=10, max_lines=10, autoscroll=True, interactive=False,
                     elem_id="train-log")
    running_command = gr.Textbox(label="Command of this run", interactive=False, buttons=["copy"],
                                 elem_id="train-running-command")
    finished = gr.Number(0, visible=False, precision=0, label="Runs finished")
    return [progress, jobs_table, *plots, log, running_command, finished]
