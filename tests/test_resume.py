"""Training survives faults: stop/resume is bit-identical, SIGINT and SIGKILL lose no work,
a NaN loss stops cleanly, checkpoints are data (weights_only) and refuse the wrong run.

Most runs are VGG19-BN on generated CIFAR-10 (tests/datagen.py): 10 training images in
batches of 5 (two steps per epoch), 10 validation images, CPU, --deterministic. Stops within
an epoch use four steps per epoch, on both kinds of split: generated MNIST idx files (uint8
tensors) and an image folder decoded by a DataLoader worker. Bit-identical results assume the
same machine and the same number of threads for both runs.

Child processes stop where the test says, never after a sleep: the CLI runs under CHILD,
which can pause it at a given step or half-way through a given checkpoint write (it prints
where it paused and waits for a line on stdin), so a signal or a kill -9 lands exactly there.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO
from tests.test_training import check_run_directory

EPOCHS = 4
STEPS_PER_EPOCH = 2
TIMING = ("seconds", "cpu_seconds", "images_per_s")
RUN_FILES = {"config.json", "model.safetensors", "history.json", "metrics.json", "predictions.json",
             "README.md", "curves.png", "examples", "tb", "checkpoint.pt", "SHA256SUMS", "progress.json", "see_why"}

# The CLI in a child process, with CIFAR-10's md5 check skipped (generated batches; tests only),
# and the test's synchronisation points (environment variables):
#   PAUSE_AT_STEP=E:S     before the checkpoint decision after step S of epoch E: print
#                         "paused at epoch E step S", wait for a line on stdin
#   PAUSE_IN_WRITE=N      in the Nth checkpoint write, once half of the temporary file is on
#                         disk: print "paused writing <tmp>", wait for a line on stdin
#   FAST_CLOCK=1          the checkpoint interval's clock jumps an hour per reading: every
#                         step is due (no wall time involved)
#   EXIT_AT_STEP=E:S      like PAUSE_AT_STEP, but the process ends there at once (os._exit), as
#                         if the machine went down (under torchrun: every rank at the same step)
CHILD = r"""
import os, sys, runpy
import torchvision.datasets.cifar as cifar
cifar.check_integrity = lambda *a, **k: True
import training.checkpoint as checkpoint
import training.midepoch as midepoch
if os.environ.get("FAST_CLOCK"):
    import itertools
    hours = itertools.count()
    midepoch.now = lambda: next(hours) * 3600.0
if os.environ.get("PAUSE_AT_STEP"):
    at = tuple(map(int, os.environ["PAUSE_AT_STEP"].split(":")))
    decide = midepoch.StepCheckpoints.__call__
    def paused(self, steps_done):
        if (self.epoch, steps_done) == at:
            print(f"paused at epoch {at[0]} step {at[1]}", flush=True)
            sys.stdin.readline()
        return decide(self, steps_done)
    midepoch.StepCheckpoints.__call__ = paused
if os.environ.get("EXIT_AT_STEP"):
    down = tuple(map(int, os.environ["EXIT_AT_STEP"].split(":")))
    decide_or_exit = midepoch.StepCheckpoints.__call__
    def exit_at(self, steps_done):
        if (self.epoch, steps_done) == down:
            os._exit(3)
        return decide_or_exit(self, steps_done)
    midepoch.StepCheckpoints.__call__ = exit_at
if os.environ.get("PAUSE_IN_WRITE"):
    nth, writes, atomic_write = int(os.environ["PAUSE_IN_WRITE"]), [], checkpoint.atomic_write
    def pausing_atomic_write(path, write):
        writes.append(path)
        if len(writes) != nth:
            return atomic_write(path, write)
        def half_then_pause(tmp):
            write(tmp)
            data = tmp.read_bytes()
            tmp.write_bytes(data[:len(data) // 2])
            print(f"paused writing {tmp}", flush=True)
            sys.stdin.readline()
        return atomic_write(path, half_then_pause)
    checkpoint.atomic_write = pausing_atomic_write
sys.argv = ["training.train"] + sys.argv[1:]
runpy.run_module("training.train", run_name="__main__")
"""


def tiny_args(data: Path, out: Path, *extra: str, epochs: int = EPOCHS) -> list[str]:
    return ["--task", "cifar10", "--data-dir", str(data), "--out", str(out), "--epochs", str(epochs),
            "--limit-train", "10", "--limit-val", "10", "--batch-size", "5", "--device", "cpu",
            "--no-progress", "--deterministic", "--workers", "1", *extra]


def resume_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--resume", "--out", str(out), "--data-dir", str(data), "--device", "cpu", "--no-progress",
            "--deterministic", "--workers", "1", *extra]


def run_main(argv: list[str]) -> Path:
    from training.train import get_args_parser, main
    return main(get_args_parser().parse_args(argv))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"tensors differ: {different[:5]}"


def history(run: Path) -> list[dict]:
    rows = json.loads((run / "history.json").read_text())
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def assert_same_run(a: Path, b: Path) -> None:
    """Same weights bit for bit, same history (timing aside), same evaluation."""
    assert_same_weights(a, b)
    assert history(a) == history(b)
    for name in ("metrics.json", "predictions.json"):
        assert json.loads((a / name).read_text()) == json.loads((b / name).read_text()), name


def assert_complete(run: Path) -> None:
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert not list(run.rglob("*.tmp")), "temporary files left behind"
    assert len(json.loads((run / "history.json").read_text())) == EPOCHS
    assert json.loads((run / "metrics.json").read_text())["epoch"] == EPOCHS
    from models.artifact import load_model
    load_model(run)


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per tag, as TensorBoard shows them (purged events removed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_one_value_per_step(run: Path, reference: Path | None = None, *, epochs: int = EPOCHS,
                              steps_per_epoch: int = STEPS_PER_EPOCH) -> None:
    got = scalars(run)
    steps = epochs * steps_per_epoch
    for tag in ("train/step_loss", "train/lr"):   # logged at the step they apply to
        assert [s for s, _ in got[tag]] == list(range(1, steps + 1)), tag
    for tag in ("train/loss", "val/loss", "val/accuracy", "train/images_per_second"):
        assert [s for s, _ in got[tag]] == [e * steps_per_epoch for e in range(1, epochs + 1)], tag
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    if recipe["schedule"]["name"] == "onecycle":   # step 1 applies max_lr / div_factor (OneCycleLR)
        first = recipe["optimizer"]["lr"] / recipe["schedule"]["div_factor"]
        assert got["train/lr"][0][1] == pytest.approx(first, rel=1e-5)
    if reference is not None:  # deterministic: the resumed curves are the straight run's curves
        ref = scalars(reference)
        for tag in ("train/step_loss", "train/lr", "train/loss", "val/loss", "val/accuracy"):
            assert got[tag] == ref[tag], tag


@pytest.fixture(autouse=True)
def _restore_determinism():
    # main(--deterministic) switches torch to deterministic algorithms process-wide.
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.fixture(scope="module")
def data(cifar10_dir) -> Path:
    return cifar10_dir


@pytest.fixture(scope="module")
def unchecked():
    with pytest.MonkeyPatch.context() as mp:
        import torchvision.datasets.cifar as cifar
        mp.setattr(cifar, "check_integrity", lambda *a, **k: True)
        yield


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data, unchecked) -> Path:
    """The reference: four epochs in one go."""
    return run_main(tiny_args(data, tmp_path_factory.mktemp("straight") / "run"))


@pytest.fixture(scope="module")
def stopped_and_resumed(tmp_path_factory, data, unchecked) -> tuple[Path, dict]:
    """Two epochs (--stop-after 2), then --resume for the other two. Returns the run and the
    checkpoint as it was after the stop."""
    out = tmp_path_factory.mktemp("split") / "run"
    run_main(tiny_args(data, out, "--stop-after", "2"))
    assert not (out / "model.safetensors").exists()   # not finished: no release weights yet
    from training.checkpoint import load_checkpoint
    after_stop = load_checkpoint(out / "checkpoint.pt")
    run_main(resume_args(data, out))
    return out, after_stop


# --- stop, resume, same result ------------------------------------------------------------

def test_stop_after_two_then_resume_equals_four_straight(straight, stopped_and_resumed):
    run, _ = stopped_and_resumed
    assert_same_run(straight, run)
    assert_complete(run)
    assert_one_value_per_step(run, reference=straight)
    assert_one_value_per_step(straight)


def test_checkpoint_holds_the_whole_resume_state(stopped_and_resumed):
    run, ckpt = stopped_and_resumed
    assert ckpt["epoch"] == 2 and [r["epoch"] for r in ckpt["history"]] == [1, 2]
    assert ckpt["step"] == 0 and ckpt["partial_epoch"] is None   # at an epoch's end
    assert set(ckpt) == {"model", "optimizer", "scheduler", "epoch", "step", "partial_epoch", "history", "rng",
                         "config", "format", "sha256"}   # nothing written that resume does not read
    assert ckpt["optimizer"]["state"], "optimizer state (momentum buffers) is saved"
    assert ckpt["scheduler"]["last_epoch"] == 2 * STEPS_PER_EPOCH   # OneCycleLR counts steps
    assert isinstance(ckpt["rng"]["torch"], torch.Tensor) and ckpt["rng"]["python"]
    assert ckpt["rng"]["numpy"]["key"].shape == (624,)      # numpy's MT19937 state
    # Data order and augmentation are functions of (seed, epoch): the config's seed and the epoch.
    assert ckpt["config"]["seed"] == 0
    # The config is stored as plain JSON data (no TorchVersion objects), so weights_only loads it.
    assert json.loads(json.dumps(ckpt["config"])) == ckpt["config"]


def test_a_resumed_run_keeps_the_precision_it_started_with(tmp_path, data, unchecked):
    """--precision auto on resume means the run's own precision, not this machine's default."""
    from training.precision import resolve_precision
    other = "fp32" if resolve_precision("auto", torch.device("cpu")) is not None else "bf16"
    out = tmp_path / "run"
    run_main(tiny_args(data, out, "--precision", other, "--stop-after", "2"))
    run_main(resume_args(data, out))
    assert json.loads((out / "config.json").read_text())["precision"] == other


def small_batches(kind: str, data_dir: Path, **kwargs):
    """Batches of a small split of each kind, with Random Erasing: CIFAR-10 tensors, or image files."""
    from models.augment import TrainAugment
    from models.tasks import RANDOM_ERASING, get_task
    from training.data import Batches, find_source, load_split
    task = get_task("cifar10") if kind == "tensors" else get_task("folder").with_architecture("vgg19_bn_32")
    source = find_source(task, data_dir)
    split = load_split(task, source, data_dir, train=True, limit=20 if kind == "tensors" else 16, seed=0)
    cfg = task.model_config(source.labels)
    augment = TrainAugment.from_recipe(task.resolved_recipe(variant=RANDOM_ERASING)["augment"], cfg)
    return Batches(split, batch_size=4, device=torch.device("cpu"), shuffle=True, drop_last=True, seed=0,
                   transform=augment, **kwargs)


def test_data_order_depends_only_on_seed_and_epoch(data, unchecked):
    def epoch_batches(epoch, burn_rng):
        loader = small_batches("tensors", data)
        if burn_rng:                      # whatever else used the global RNGs does not matter
            torch.rand(100), random.random()
        loader.set_epoch(epoch)
        return [(x.clone(), idx.clone()) for x, _, idx in loader]

    a, b = epoch_batches(3, False), epoch_batches(3, True)
    assert all(torch.equal(xa, xb) and torch.equal(ia, ib) for (xa, ia), (xb, ib) in zip(a, b))
    c = epoch_batches(4, False)
    assert not all(torch.equal(ia, ic) for (_, ia), (_, ic) in zip(a, c))


# --- stop within an epoch, resume at its step, same result ----------------------------------

MNIST_STEPS = 4   # 32 training images in batches of 8


def within_epoch_args(kind: str, data: Path, out: Path, *extra: str) -> list[str]:
    """Two epochs of four steps with Random Erasing (so both augmentation streams are in play): MNIST
    (a tensor split), or an image folder (cat/dog, VGG19-BN at 32 px) decoded by one DataLoader worker."""
    what = ["--task", "mnist", "--limit-train", "32", "--batch-size", "8"] if kind == "tensors" else \
        ["--task", "folder", "--arch", "vgg19_bn_32", "--limit-train", "16", "--batch-size", "4"]
    return [*what, "--random-erasing", "--data-dir", str(data), "--out", str(out), "--epochs", "2", "--limit-val",
            "16", "--device", "cpu", "--no-progress", "--deterministic", "--workers", "1", *extra]


def in_a_fresh_process(argv: list[str]) -> None:
    """The CLI in a child process, as the interrupted runs: a process that earlier tests trained in
    can pick other bf16 kernels, and these runs are compared bit for bit."""
    assert Child(argv).finish() == 0


@pytest.fixture(scope="module")
def straight_runs(tmp_path_factory, mnist_dir, catsdogs_dir):
    """The references: each kind's two epochs in one go (trained when first asked for)."""
    runs: dict[str, Path] = {}
    data = {"tensors": mnist_dir, "files": catsdogs_dir}

    def reference(kind: str) -> Path:
        if kind not in runs:
            runs[kind] = tmp_path_factory.mktemp(kind) / "run"
            in_a_fresh_process(within_epoch_args(kind, data[kind], runs[kind]))
        return runs[kind]
    reference.data = data
    return reference


def test_sigint_within_an_epoch_then_resume_equals_a_straight_run(tmp_path, straight_runs, child):
    """SIGINT after step 2 of epoch 2 (of 4), image files decoded by a DataLoader worker that the
    signal reaches too: the checkpoint holds that step; --resume continues there with the same data
    order, augmentation draws and RNG states, and ends bit for bit where a straight run ends
    (weights, history, evaluation, TensorBoard curves)."""
    from training.checkpoint import load_checkpoint
    run, data = tmp_path / "run", straight_runs.data["files"]
    proc = child(within_epoch_args("files", data, run), PAUSE_AT_STEP="2:2")
    assert stop_with_a_signal_at(proc, signal.SIGINT, "2:2") == 130, proc.text()
    assert "SIGINT received: stopping after this step and saving a checkpoint" in proc.text()
    assert "Traceback" not in proc.text() and not (run / "model.safetensors").exists()
    assert proc.text().splitlines()[-1].startswith(f"stopped at epoch 2, step 2 of {MNIST_STEPS}; checkpoint saved at "
                                                   f"that step ({run / 'checkpoint.pt'}); resume with: ")
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2) and ckpt["partial_epoch"]["loader"]["batches"] == 2
    resumed = Child(resume_args(data, run))
    assert resumed.finish() == 0
    assert resumed.lines["stdout"][0].startswith(
        f"resuming folder (random-erasing, preset full) at epoch 2, step 2 of {MNIST_STEPS} in {run}: ")
    straight = straight_runs("files")
    assert_same_run(straight, run)
    assert_one_value_per_step(run, reference=straight, epochs=2, steps_per_epoch=MNIST_STEPS)


def test_checkpoints_at_a_time_interval_survive_kill_9(tmp_path, mnist_dir, straight_runs, child):
    """--checkpoint-every with a clock that makes every step due: a checkpoint at each step (but an
    epoch's last, where the epoch's own comes next); kill -9 in epoch 2 loses nothing saved, and
    the resumed run ends where a straight run (no checkpoints within epochs) ends."""
    from training.checkpoint import load_checkpoint
    run = tmp_path / "run"
    proc = child(within_epoch_args("tensors", mnist_dir, run, "--checkpoint-every", "1"), FAST_CLOCK="1",
                 PAUSE_AT_STEP="2:3")
    proc.wait_for("paused at epoch 2 step 3")
    saved = [line for line in proc.lines["stdout"] if line and line.startswith("checkpoint saved at ")]
    assert saved == [f"checkpoint saved at epoch {e}, step {s} of {MNIST_STEPS} ({run / 'checkpoint.pt'})"
                     for e, s in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)]]
    proc.proc.send_signal(signal.SIGKILL)
    assert proc.finish() == -signal.SIGKILL
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2)
    in_a_fresh_process(resume_args(mnist_dir, run))
    straight = straight_runs("tensors")
    assert_same_run(straight, run)
    assert_one_value_per_step(run, reference=straight, epochs=2, steps_per_epoch=MNIST_STEPS)


def test_under_torchrun_a_checkpoint_within_an_epoch_holds_both_ranks_and_resumes(tmp_path, mnist_dir, mnist_run):
    """Two ranks (Gloo, CPU), three steps of 2 x 16 images: with every step due, the ranks agree to
    checkpoint at each step (rank 0 writes, the sums are both ranks'); both go down at step 2, and
    torchrun --resume ends with the weights of a straight two-rank run, in one whole run folder that
    rank 0 alone wrote, its metrics reduced over both ranks' halves of the validation subset."""
    from training.checkpoint import load_checkpoint
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def torchrun(out: Path, *extra: str, hooks: dict | None = None, entry=("-m", "training.train")):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *entry,
               "--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress", "--deterministic", "--out", str(out),
               *extra]
        env = {**os.environ, "OMP_NUM_THREADS": "1", **(hooks or {})}
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    first_run = ["--task", "mnist", "--epochs", "1", "--limit-train", "96", "--limit-val", "32", "--batch-size", "16",
                 "--checkpoint-every", "1"]
    straight = torchrun(tmp_path / "straight", *first_run)
    assert straight.returncode == 0, straight.stderr[-3000:]
    run = tmp_path / "run"
    down = torchrun(run, *first_run, hooks={"FAST_CLOCK": "1", "EXIT_AT_STEP": "1:2", "PYTHONPATH": str(REPO)},
                    entry=(str(script),))
    assert down.returncode != 0
    assert down.stdout.count(f"checkpoint saved at epoch 1, step 1 of 3 ({run / 'checkpoint.pt'})") == 1, \
        down.stdout + down.stderr[-3000:]     # said once: by rank 0
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (0, 1)
    partial = ckpt["partial_epoch"]
    assert partial["world_size"] == 2 and partial["tally"]["seen"] == 32    # both ranks' 16 images
    resumed = torchrun(run, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout and resumed.stdout.count("epoch 1/1") == 1    # said by rank 0 only
    assert_same_weights(tmp_path / "straight", run)
    config, _, metrics, _ = check_run_directory(run, task="mnist", epochs=1, val_images=32, train_images=96)
    assert (config["distributed"]["world_size"], config["distributed"]["effective_batch_size"]) == (2, 32)
    assert metrics["num_images"] == 32 and sum(map(sum, metrics["confusion_matrix"])) == 32   # not rank 0's half
    single, both = (json.loads((r / "predictions.json").read_text()) for r in (mnist_run, run))
    assert (both["indices"], both["labels"]) == (single["indices"], single["labels"])   # a one-process run's images
    rows = [json.loads((r / "history.json").read_text())[0] for r in (tmp_path / "straight", run)]
    for key in ("train_loss", "train_accuracy"):   # the same sums, added in another order
        assert rows[1][key] == pytest.approx(rows[0][key], rel=1e-6)
    assert rows[1]["val_loss"] == rows[0]["val_loss"] and rows[1]["val_accuracy"] == rows[0]["val_accuracy"]


def test_the_train_tab_shows_where_a_stopped_job_stands_and_resumes_it(tmp_path, mnist_dir):
    """The app's Train jobs (ui/jobs.py: `python -m training.train` children, Stop = SIGINT): after
    a stop, progress.json, the job table and the status text show the checkpoint's own position
    and the CLI's stop message; Resume continues from it to a finished run."""
    import time
    from models.artifact import load_model
    from training.checkpoint import load_checkpoint
    from ui.jobs import FINISHED, STOPPED, TrainingJobs, TrainRequest
    from ui.train_tab import Trainer, jobs_frame, progress_markdown
    jobs = TrainingJobs(tmp_path / "runs", data_dir=mnist_dir, device="cpu")
    try:
        [job] = jobs.submit([TrainRequest(task="mnist", epochs=2, batch_size=8, limit_train=64, limit_val=16)])
        deadline = time.monotonic() + 600
        while job.progress().get("step", 0) < 1 and job.status not in (STOPPED, FINISHED):   # a sync point
            assert time.monotonic() < deadline, job.log
            time.sleep(0.2)
        jobs.stop(job.id)
        assert jobs.wait(job, (STOPPED,), 600), list(job.log)
        ckpt = load_checkpoint(job.run_dir / "checkpoint.pt")
        steps = 8
        shown = (ckpt["epoch"] + 1, ckpt["step"]) if ckpt["step"] else (ckpt["epoch"], steps)
        progress = job.progress()
        assert (progress["status"], progress["epoch"], progress["step"]) == ("stopped", *shown)
        where = (f"epoch {ckpt['epoch'] + 1}, step {ckpt['step']} of {steps}; checkpoint saved at that step"
                 if ckpt["step"] else f"the end of epoch {ckpt['epoch']}; checkpoint saved there")
        message = (f"stopped at {where} ({job.run_dir / 'checkpoint.pt'}); resume with: python -m training.train "
                   f"--resume --out {job.run_dir}")
        assert progress["message"] == message and job.log[-1] == message
        trainer = Trainer(jobs)
        assert message in progress_markdown(trainer)
        stopped_at = jobs_frame(trainer).iloc[0]["state"]
        assert stopped_at.startswith(f"stopped · epoch {shown[0]}/2, step {shown[1]}/{steps}"), stopped_at
        resumed = jobs.resume(job.id)
        assert jobs.wait(resumed, (FINISHED,), 600), list(resumed.log)
        # The stopped job keeps the place it stopped at (the resumed one wrote the same progress.json since).
        assert jobs_frame(trainer).iloc[0]["state"] == stopped_at
        assert jobs_frame(trainer).iloc[1]["state"].startswith(f"finished (resume) · epoch 2/2, step {steps}/{steps}")
        assert any(line.startswith("resuming mnist (baseline, preset full) at ") for line in resumed.log)
        assert len(json.loads((job.run_dir / "history.json").read_text())) == 2
        load_model(job.run_dir)
    finally:
        jobs.close()


@pytest.mark.parametrize("kind, workers", [("tensors", 0), ("files", 2)])
def test_a_loader_resumed_at_its_place_hands_out_the_rest_of_the_epoch(kind, workers, data, catsdogs_dir, unchecked):
    """What the loader hands out after `resume_at(place)` is what it handed out after that place in
    one pass: same images, same crops, flips and erasing (DataLoader workers decoding files included)."""
    make = lambda: small_batches(kind, data if kind == "tensors" else catsdogs_dir, workers=workers)  # noqa: E731
    one_pass, places = make(), []
    one_pass.set_epoch(3)
    batches = []
    for x, _, idx in one_pass:
        batches.append((x.clone(), idx.clone()))
        places.append(one_pass.place())
    assert len(batches) == len(one_pass) >= 4
    resumed = make()
    resumed.set_epoch(3)
    resumed.resume_at(places[1])
    rest = [(x, idx) for x, _, idx in resumed]
    assert len(rest) == len(batches) - 2
    for (x, idx), (xr, idxr) in zip(batches[2:], rest):
        assert torch.equal(idx, idxr) and torch.equal(x, xr)
    assert resumed.place()["batches"] == len(batches)
    with pytest.raises(ValueError, match="cannot resume"):
        resumed.resume_at({**places[1], "epoch": 4})


def test_the_checkpoint_interval_counts_from_the_last_checkpoint(monkeypatch):
    import training.midepoch as midepoch
    clock = [1000.0]
    monkeypatch.setattr(midepoch, "now", lambda: clock[0])
    timer = midepoch.IntervalTimer(300)
    clock[0] = 1299.9
    assert not timer.due()
    clock[0] = 1300.0
    assert timer.due()
    timer.reset()                       # a checkpoint was saved
    assert not timer.due()
    clock[0] = 1600.0
    assert timer.due()
    off = midepoch.IntervalTimer(0)     # --checkpoint-every 0: epoch ends only
    clock[0] = 1e12
    assert not off.due()


def test_positions_say_where_a_checkpoint_stands():
    from training.midepoch import Position
    assert Position(0).describe(468) == "the start of the run"
    assert Position(1).describe(468) == "the end of epoch 1"
    assert Position(1, 117).describe(468) == "epoch 2, step 117 of 468"
    assert Position(1, 117).global_step(468) == 585


def test_a_checkpoint_within_an_epoch_resumes_only_with_its_number_of_ranks():
    from training.checkpoint import CheckpointError
    from training.midepoch import resume_partial
    ckpt = {"epoch": 1, "step": 3, "partial_epoch": {"world_size": 2, "loader": {}, "lr": 0.1, "tally": {}}}
    with pytest.raises(CheckpointError, match=r"^ckpt: was saved within epoch 2 \(step 3\) by 2 process\(es\); "
                                              r"resume it with the same number \(now 1\)$"):
        resume_partial(ckpt, device=torch.device("cpu"), rank=0, world_size=1, path="ckpt")
    assert resume_partial({"epoch": 2, "step": 0, "partial_epoch": None}, device=torch.device("cpu"), rank=0,
                          world_size=1, path="ckpt") is None


def _rewrite_checkpoint(path: Path, change) -> None:
    """Rewrite checkpoint.pt with `change(state)` applied and a digest that matches again."""
    from training.checkpoint import state_sha256
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.pop("sha256")
    change(state)
    state["sha256"] = state_sha256(state)
    torch.save(state, path)


def test_a_checkpoint_of_another_format_is_refused_in_one_line(stopped_and_resumed, tmp_path):
    """Checkpoints are resume state of a run in progress, never released: one format is read."""
    from training.checkpoint import CheckpointError, load_checkpoint
    path = tmp_path / "checkpoint.pt"
    shutil.copy(stopped_and_resumed[0] / "checkpoint.pt", path)
    for other in (3, 5):
        _rewrite_checkpoint(path, lambda state: state.update(format=other))
        with pytest.raises(CheckpointError, match=rf"^.*checkpoint\.pt: checkpoint format {other}, this CNN Studio "
                                                  r"reads format 4; resume it with the version that wrote it$"):
            load_checkpoint(path)


# --- refusing the wrong checkpoint ---------------------------------------------------------

@pytest.mark.parametrize("extra, what", [
    (["--lr", "0.5"], "recipe.optimizer.lr: checkpoint 0.1, now 0.5"),
    (["--epochs", "6"], f"recipe.epochs: checkpoint {EPOCHS}, now 6"),
    (["--batch-size", "2"], "recipe.batch_size: checkpoint 5, now 2"),
    (["--task", "mnist"], 'task: checkpoint "cifar10", now "mnist"'),
    (["--seed", "3"], "seed: checkpoint 0, now 3"),
    (["--random-erasing"], 'variant: checkpoint "baseline", now "random-erasing"'),
])
def test_resume_refuses_another_task_or_recipe_naming_what_differs(stopped_and_resumed, data, extra, what):
    from training.checkpoint import CheckpointError
    run, _ = stopped_and_resumed
    before = sha256(run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: was written for a different run \(") as err:
        run_main(resume_args(data, run, *extra))
    assert what in str(err.value) and "\n" not in str(err.value)
    assert sha256(run / "checkpoint.pt") == before


def test_resume_accepts_a_named_checkpoint_file(stopped_and_resumed, data):
    from training.train import get_args_parser, resolve
    run, _ = stopped_and_resumed
    args = get_args_parser().parse_args(["--resume", str(run / "checkpoint.pt"), "--data-dir", str(data)])
    cfg = resolve(args)
    assert cfg.out == run and cfg.task == "cifar10" and cfg.resume_from == run / "checkpoint.pt"


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, data):
    from training.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        run_main(resume_args(data, tmp_path / "nothing-here"))


# --- checkpoints are data -----------------------------------------------------------------

class _CreatesAFile:
    """Unpickling this would create `marker`: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoints(marker: Path) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({"model": {}, "epoch": 1, "payload": _CreatesAFile(marker)}, buf)
    return {"torch.save zip": buf.getvalue(),
            "plain pickle": pickle.dumps({"epoch": 1, "payload": _CreatesAFile(marker)}, protocol=2),
            "legacy torch.save": _legacy_torch_save(_CreatesAFile(marker))}


def _legacy_torch_save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, data):
    from training.checkpoint import CheckpointError, load_checkpoint
    marker = tmp_path / "pwned"
    # The payload works: plain pickle would run it.
    pickle.loads(pickle.dumps(_CreatesAFile(marker)))
    assert marker.exists()
    marker.unlink()
    for kind, payload in _evil_checkpoints(marker).items():
        run = tmp_path / kind.replace(" ", "-")
        run.mkdir()
        (run / "checkpoint.pt").write_bytes(payload)
        with pytest.raises(CheckpointError, match=r"checkpoint\.pt: not a loadable checkpoint, refused"):
            load_checkpoint(run / "checkpoint.pt")
        with pytest.raises(CheckpointError, match="refused"):
            run_main(resume_args(data, run))
        assert not marker.exists(), f"{kind}: unpickling ran code"
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"], f"{kind}: side effects"


def test_malicious_checkpoint_through_the_cli(tmp_path, data):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(_evil_checkpoints(marker)["torch.save zip"])
    proc = subprocess.run([sys.executable, "-c", CHILD, *resume_args(data, run)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "not a loadable checkpoint, refused" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "not a dict", "missing keys"])
def test_damaged_checkpoint_is_a_clear_error(tmp_path, damage):
    from training.checkpoint import CheckpointError, load_checkpoint
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.ones(1000)}, "epoch": 1}, buf)
    good = buf.getvalue()
    payloads = {"truncated": good[: len(good) // 2], "random bytes": os.urandom(4096), "empty": b"",
                "not a dict": _legacy_torch_save([1, 2, 3]), "missing keys": good}
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(payloads[damage])
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: not a"):
        load_checkpoint(path)


def test_a_checkpoint_that_would_not_load_is_never_written(tmp_path):
    from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    path = tmp_path / "checkpoint.pt"
    state = {"model": {"w": torch.zeros(3)}, "optimizer": {}, "epoch": 1, "history": [], "rng": {},
             "config": {"seed": 0, "versions": {"torch": torch.__version__}}}
    save_checkpoint(path, state)   # torch.__version__ is a TorchVersion: stored as a plain str
    assert load_checkpoint(path)["config"]["versions"]["torch"] == str(torch.__version__)
    before = sha256(path)
    with pytest.raises(CheckpointError, match="would not load with weights_only=True"):
        save_checkpoint(path, {**state, "epoch": 2, "extra": _CreatesAFile(tmp_path / "never")})
    assert sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def flip_tensor_bytes(checkpoint: Path, count: int = 2000) -> None:
    """XOR `count` bytes in the middle of the largest tensor inside checkpoint.pt (a zip archive
    whose entries torch stores uncompressed): the file still loads, the numbers are different."""
    import zipfile
    with zipfile.ZipFile(checkpoint) as z:
        entry = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(checkpoint.read_bytes())
    local = entry.header_offset
    name_len, extra_len = (int.from_bytes(data[local + o:local + o + 2], "little") for o in (26, 28))
    start = local + 30 + name_len + extra_len + entry.file_size // 2 // 4 * 4
    for k in range(count // 4):   # the lowest byte of float32 values (little-endian): finite, but wrong
        data[start + 4 * k] ^= 0xA5
    checkpoint.write_bytes(bytes(data))


def files_on_disk(folder: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(folder)): (sha256(p), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_checkpoint_carries_its_own_digest(stopped_and_resumed):
    from training.checkpoint import load_checkpoint, state_sha256
    run, _ = stopped_and_resumed
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["format"] == 4
    assert state["sha256"] == state_sha256({k: v for k, v in state.items() if k != "sha256"})


def test_flipped_bytes_in_a_checkpoint_are_refused_with_no_side_effect(stopped_and_resumed, data, tmp_path):
    from training.checkpoint import CheckpointError, load_checkpoint
    run = tmp_path / "run"
    shutil.copytree(stopped_and_resumed[0], run)
    (run / "model.safetensors").unlink()              # as if stopped before the release: resume would write one
    for name in ("SHA256SUMS", "metrics.json", "predictions.json", "README.md", "curves.png"):
        (run / name).unlink()
    flip_tensor_bytes(run / "checkpoint.pt")
    # The damage passes every check torch makes: the file loads with weights_only=True.
    torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: damaged \(its content does not match the sha256"):
        load_checkpoint(run / "checkpoint.pt")
    before = files_on_disk(run)
    proc = subprocess.run([sys.executable, "-c", CHILD, *resume_args(data, run)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {run / 'checkpoint.pt'}: damaged"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert files_on_disk(run) == before, "a refused resume changed files"
    assert not (run / "model.safetensors").exists()


# --- faults -------------------------------------------------------------------------------

class Child:
    """The training CLI (CHILD) in a child process; its stdout and stderr are read line by line
    in threads, so the test can wait for a line (a synchronisation point) on either."""

    def __init__(self, argv: list[str], **env: str):
        # Same thread count as the in-process reference (the environment is inherited).
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=REPO, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)   # its own process group (killpg reaches only it)
        self.lines = {"stdout": [], "stderr": []}
        self.changed = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.lines]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str) -> None:
        for line in getattr(self.proc, name):
            with self.changed:
                self.lines[name].append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines[name].append(None)    # end of stream
            self.changed.notify_all()

    def wait_for(self, text: str, stream: str = "stdout", timeout: float = 300) -> str:
        """The first line of `stream` containing `text` (fails if the child ends without one)."""
        def found():
            return next((l for l in self.lines[stream] if l is not None and text in l), None) or \
                (None in self.lines[stream])
        with self.changed:
            assert self.changed.wait_for(found, timeout), f"no {text!r} on {stream} within {timeout}s"
        line = found()
        assert isinstance(line, str), f"the child ended without {text!r} on {stream}: {self.text()}"
        return line

    def resume(self) -> None:
        """Let a paused child go on."""
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout)
        return code

    def text(self, stream: str = "stderr") -> str:
        return "\n".join(l for l in self.lines[stream] if l is not None)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def child():
    started = []
    yield lambda argv, **env: started.append(Child(argv, **env)) or started[-1]
    for c in started:
        c.kill()


def stop_with_a_signal_at(child: Child, signum: int, pause: str) -> int:
    """Send `signum` while the child is paused at its step, let it go on once it has taken the signal."""
    child.wait_for(f"paused at epoch {pause.replace(':', ' step ')}")
    os.killpg(child.proc.pid, signum)          # as a terminal's Ctrl-C: the whole group, DataLoader workers too
    child.wait_for(f"{signal.Signals(signum).name} received", "stderr")
    child.resume()
    return child.finish()


@pytest.mark.parametrize("signum", [signal.SIGTERM], ids=["SIGTERM"])
def test_signal_saves_at_the_step_closes_tensorboard_and_says_how_to_resume(signum, tmp_path, data, child):
    """SIGTERM within epoch 2: the step finishes, a checkpoint is saved at it, TensorBoard is flushed
    and closed, the exit code is 128 + signal, stderr says what was kept and how to resume. (Ctrl-C,
    SIGINT, is the same handler: test_sigint_within_an_epoch_then_resume_equals_a_straight_run.)"""
    run = tmp_path / "run"
    proc = child(tiny_args(data, run), PAUSE_AT_STEP="2:1")
    code = stop_with_a_signal_at(proc, signum, "2:1")
    stderr = proc.text()
    assert code == 128 + signum, stderr
    assert stderr.splitlines()[-1] == (
        f"stopped at epoch 2, step 1 of {STEPS_PER_EPOCH}; checkpoint saved at that step ({run / 'checkpoint.pt'}); "
        f"resume with: python -m training.train --resume --out {run}")
    assert f"{signal.Signals(signum).name} received: stopping after this step and saving a checkpoint" in stderr
    assert "Traceback" not in stderr
    assert not (run / "model.safetensors").exists()
    assert not list(run.rglob("*.tmp"))
    from models.registry import create_model
    from training.checkpoint import load_checkpoint
    from training.train import get_args_parser, resolve
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 1)     # epoch 1 finished, one step of epoch 2
    assert ckpt["partial_epoch"]["tally"]["seen"] == 5 and ckpt["partial_epoch"]["loader"]["batches"] == 1
    assert len(json.loads((run / "history.json").read_text())) == 1
    progress = json.loads((run / "progress.json").read_text())
    assert (progress["status"], progress["epoch"], progress["step"]) == ("stopped", 2, 1)
    assert progress["message"] == stderr.splitlines()[-1]
    # The checkpoint is accepted by --resume and its weights fit the model strictly.
    cfg = resolve(get_args_parser().parse_args(resume_args(data, run)))
    assert cfg.out == run and cfg.resume_from == run / "checkpoint.pt"
    create_model(cfg.model).load_state_dict(ckpt["model"], strict=True)
    # TensorBoard was flushed and closed: every step up to the checkpoint is readable.
    assert [s for s, _ in scalars(run)["train/step_loss"]] == [1, 2, 3]


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, data, straight, child):
    """kill -9 while checkpoint.pt is being replaced (half of the new file written): the old file
    survives intact, --resume cleans the half-written temporary file and finishes the same run
    as the straight one."""
    run = tmp_path / "run"
    # Writes: 1 before the first step, 2 after epoch 1, 3 after epoch 2 (paused half-way).
    proc = child(tiny_args(data, run), PAUSE_IN_WRITE="3")
    tmp = Path(proc.wait_for("paused writing ").removeprefix("paused writing "))
    assert tmp.parent == run and tmp.is_file() and tmp.stat().st_size > 0
    before = sha256(run / "checkpoint.pt")
    proc.proc.send_signal(signal.SIGKILL)
    assert proc.finish() == -signal.SIGKILL
    assert tmp.is_file(), "the kill came after the write had finished"
    assert sha256(run / "checkpoint.pt") == before
    from training.checkpoint import load_checkpoint
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1    # the previous file, whole
    run_main(resume_args(data, run))
    assert not tmp.exists()
    assert_complete(run)
    assert_same_run(straight, run)
    assert_one_value_per_step(run, reference=straight)


def test_nan_loss_stops_with_epoch_and_step_and_keeps_the_last_checkpoint(tmp_path, data, unchecked,
                                                                          monkeypatch):
    import training.engine as engine
    run = tmp_path / "run"
    real = engine.compute_loss
    train_calls = []
    snapshot = {}

    def poisoned(loss_fn, logits, labels, cfg):
        loss = real(loss_fn, logits, labels, cfg)
        if not torch.is_grad_enabled():        # evaluation: leave alone
            return loss
        train_calls.append(1)
        if len(train_calls) == STEPS_PER_EPOCH + 2:   # epoch 2, second step (step 1)
            snapshot["checkpoint"] = sha256(run / "checkpoint.pt")
            snapshot["history"] = (run / "history.json").read_bytes()
            return loss * float("nan")
        return loss

    monkeypatch.setattr(engine, "compute_loss", poisoned)
    from training.divergence import DivergedError
    with pytest.raises(DivergedError, match=rf"^non-finite loss at epoch 2 step 1; no release written; the last good "
                                            rf"checkpoint is {run / 'checkpoint.pt'}, saved at the end of epoch 1$"):
        run_main(tiny_args(data, run, epochs=3))
    assert sha256(run / "checkpoint.pt") == snapshot["checkpoint"]
    assert (run / "history.json").read_bytes() == snapshot["history"]
    assert not (run / "model.safetensors").exists()
    assert not list(run.rglob("*.tmp"))
    from training.checkpoint import load_checkpoint
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(t).all() for t in ckpt["model"].values()
                                      if t.is_floating_point())
    # TensorBoard was closed with the steps before the NaN and nothing after.
    assert [s for s, _ in scalars(run)["train/step_loss"]] == [1, 2, 3]


def test_a_diverged_run_exits_non_zero_and_writes_no_release(tmp_path, data, unchecked, capsys):
    """Issue 14 §2: --lr 1e9 kept a finite training loss while the weights overflowed; the run said "done"
    and released NaN weights with bare NaN in metrics.json. Now the epoch's check stops it."""
    from training.cli import run_cli
    from training.checkpoint import load_checkpoint
    from training.divergence import DivergedError
    from training.train import get_args_parser, main
    run = tmp_path / "run"
    code = run_cli(main, get_args_parser(), tiny_args(data, run, "--lr", "1e9", epochs=2), errors=(DivergedError,))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "diverged at epoch 1: non-finite " in line or \
        "non-finite loss at epoch 1" in line, line
    assert line.endswith(f"no release written; the last good checkpoint is {run / 'checkpoint.pt'}, saved at the "
                         f"start of the run")
    for release_file in ("model.safetensors", "metrics.json", "predictions.json", "SHA256SUMS", "README.md",
                         "history.json"):
        assert not (run / release_file).exists(), release_file
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 0


def checkpoint_mib(run: Path) -> str:
    return f"{(run / 'checkpoint.pt').stat().st_size / 2**20:,.0f}"


def test_a_full_disk_during_a_checkpoint_write_keeps_history_behind_the_checkpoint(tmp_path, data, unchecked,
                                                                                   capsys, monkeypatch):
    """ENOSPC in the middle of writing epoch 2's checkpoint (the writer has written part of the file)."""
    import errno
    import training.checkpoint as checkpoint
    from training.cli import run_cli
    from training.train import get_args_parser, main
    real_atomic_write = checkpoint.atomic_write
    writes = []

    def disk_fills_up(path, write):
        writes.append(path)
        if len(writes) < 3:                         # epoch 0 (before the first step) and epoch 1 fit
            return real_atomic_write(path, write)

        def partial(tmp):
            tmp.write_bytes(b"PK\x03\x04" + b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_atomic_write(path, partial)

    monkeypatch.setattr(checkpoint, "atomic_write", disk_fills_up)
    run = tmp_path / "run"
    code = run_cli(main, get_args_parser(), tiny_args(data, run, epochs=3))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: {run / 'checkpoint.pt'}: cannot write (No space left on device; it needs "
        f"{checkpoint_mib(run)} MiB); stopped during epoch 2; "
        f"{run / 'checkpoint.pt'} holds the end of epoch 1, resume with: python -m training.train --resume "
        f"--out {run}")
    from training.checkpoint import load_checkpoint
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1]
    assert not list(run.rglob("*.tmp")) and not (run / "model.safetensors").exists()


def test_a_second_signal_stops_at_once_without_a_traceback(tmp_path, data, child):
    """Two Ctrl-C in a row: the second one stops at once (exit 130), one line says which checkpoint is kept."""
    run = tmp_path / "run"
    proc = child(tiny_args(data, run), PAUSE_AT_STEP="2:1")
    proc.wait_for("paused at epoch 2 step 1")
    proc.proc.send_signal(signal.SIGINT)
    proc.wait_for("SIGINT received", "stderr")
    proc.proc.send_signal(signal.SIGINT)       # while still paused: the step never finishes
    code = proc.finish()
    stderr = proc.text()
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.splitlines()[-1] == (
        f"stopped at once during epoch 2 (step 1 of {STEPS_PER_EPOCH}); the last checkpoint saved is kept: the end of "
        f"epoch 1 ({run / 'checkpoint.pt'}); resume with: python -m training.train --resume --out {run}")
    from training.checkpoint import load_checkpoint
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 0)
    assert not list(run.rglob("*.tmp"))


def test_the_second_signal_handler_raises_stop_now(capsys):
    from training.signals import StopFlag, StopNow
    flag = StopFlag()
    flag._handle(signal.SIGINT, None)
    assert flag() and "SIGINT received" in capsys.readouterr().err
    with pytest.raises(StopNow) as stop:
        flag._handle(signal.SIGINT, None)
    assert stop.value.signum == signal.SIGINT


# --- atomic writes under kill -9 ----------------------------------------------------------

# Replaces FILE (b"A" * 1000) with b"B" * 2000 through models.atomic, pausing at PHASE: half-way
# through writing the temporary file, after it is complete and fsynced but before the rename,
# or after the rename (before the folder's fsync). It prints the phase and waits on stdin.
WRITER = """
import os, sys
import models.atomic as atomic
path, phase = sys.argv[1], sys.argv[2]

def pause():
    print(phase, flush=True)
    sys.stdin.readline()

def write(tmp):
    with open(tmp, "wb") as f:
        f.write(b"B" * 1000)
        f.flush()
        if phase == "writing":
            pause()
        f.write(b"B" * 1000)

if phase == "before-rename":
    rename = os.replace
    os.replace = lambda a, b: (pause(), rename(a, b))
if phase == "after-rename":
    fsync_dir = atomic._fsync_dir
    atomic._fsync_dir = lambda folder: (pause(), fsync_dir(folder))
atomic.atomic_write(path, write)
"""


@pytest.mark.parametrize("phase, survivor", [("writing", b"A" * 1000), ("before-rename", b"A" * 1000),
                                             ("after-rename", b"B" * 2000)])
def test_atomic_write_survives_sigkill_in_each_phase(phase, survivor, tmp_path):
    """kill -9 at each moment of a replacement leaves the old or the new file, whole, never part of one."""
    from models.atomic import atomic_write_bytes, remove_stale_temps
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"A" * 1000)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), phase], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == phase
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert target.read_bytes() == survivor
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "file.bin"]
    assert len(leftovers) == (0 if phase == "after-rename" else 1)   # the temporary file of the killed write
    remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
