"""Training survives faults: stop/resume is bit-identical, SIGINT and SIGKILL lose no work,
a NaN loss stops cleanly, checkpoints are data (weights_only) and refuse the wrong run.

All runs are VGG19-BN on generated CIFAR-10 (tests/datagen.py): 10 training images in
batches of 5 (two steps per epoch), 10 validation images, CPU, --deterministic. Bit-identical
results assume the same machine and the same number of threads for both runs.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO

EPOCHS = 4
STEPS_PER_EPOCH = 2
TIMING = ("seconds", "cpu_seconds", "images_per_s")
RUN_FILES = {"config.json", "model.safetensors", "history.json", "metrics.json", "predictions.json",
             "README.md", "curves.png", "examples", "tb", "checkpoint.pt", "SHA256SUMS", "progress.json", "see_why"}

# The CLI in a child process, with CIFAR-10's md5 check skipped (generated batches; tests only).
CHILD = ("import sys, runpy; import torchvision.datasets.cifar as c; "
         "c.check_integrity = lambda *a, **k: True; "
         "sys.argv = ['training.train'] + sys.argv[1:]; "
         "runpy.run_module('training.train', run_name='__main__')")


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


def assert_one_value_per_step(run: Path, reference: Path | None = None) -> None:
    got = scalars(run)
    steps = EPOCHS * STEPS_PER_EPOCH
    for tag in ("train/step_loss", "train/lr"):   # logged at the step they apply to
        assert [s for s, _ in got[tag]] == list(range(1, steps + 1)), tag
    for tag in ("train/loss", "val/loss", "val/accuracy", "train/images_per_second"):
        assert [s for s, _ in got[tag]] == [e * STEPS_PER_EPOCH for e in range(1, EPOCHS + 1)], tag
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
    from training.checkpoint import config_hash
    assert ckpt["epoch"] == 2 and [r["epoch"] for r in ckpt["history"]] == [1, 2]
    assert set(ckpt) == {"model", "optimizer", "scheduler", "epoch", "history", "rng", "config",
                         "config_hash", "format", "sha256"}   # nothing written that resume does not read
    assert ckpt["optimizer"]["state"], "optimizer state (momentum buffers) is saved"
    assert ckpt["scheduler"]["last_epoch"] == 2 * STEPS_PER_EPOCH   # OneCycleLR counts steps
    assert isinstance(ckpt["rng"]["torch"], torch.Tensor) and ckpt["rng"]["python"]
    assert ckpt["config_hash"] == config_hash(ckpt["config"])
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


def test_data_order_depends_only_on_seed_and_epoch(data, unchecked):
    from models.augment import TrainAugment
    from training.data import DeviceLoader, load_split
    from training.tasks import get_task
    task = get_task("cifar10")
    split = load_split(task, data, train=True, limit=20, seed=0)
    augment = TrainAugment.from_recipe(task.resolved_recipe()["augment"], task.model)

    def epoch_batches(epoch, burn_rng):
        loader = DeviceLoader(split, batch_size=10, device=torch.device("cpu"), shuffle=True, drop_last=True,
                              seed=0, transform=augment)
        if burn_rng:                      # whatever else used the global RNGs does not matter
            torch.rand(100), random.random()
        loader.set_epoch(epoch)
        return [(x.clone(), idx.clone()) for x, _, idx in loader]

    a, b = epoch_batches(3, False), epoch_batches(3, True)
    assert all(torch.equal(xa, xb) and torch.equal(ia, ib) for (xa, ia), (xb, ib) in zip(a, b))
    c = epoch_batches(4, False)
    assert not all(torch.equal(ia, ic) for (_, ia), (_, ic) in zip(a, c))


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
             "config": {"seed": 0, "versions": {"torch": torch.__version__}}, "config_hash": "x"}
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
    assert state["format"] == 2
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

def _start_child(argv: list[str], stderr_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}   # same thread count as the in-process reference
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=open(stderr_path, "w"))


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 300) -> list[str]:
    """Read the child's stdout until a line starts with `prefix`; the rest is drained in a thread."""
    seen: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(prefix):
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"no line starting with {prefix!r} within {timeout}s: {seen}"
    assert any(line.startswith(prefix) for line in seen), f"child ended first: {seen}"
    return seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_closes_tensorboard_and_says_how_to_resume(signum, tmp_path, data, unchecked):
    """Ctrl-C / SIGTERM mid-run: the step finishes, the last epoch's checkpoint stays resumable,
    TensorBoard is flushed and closed, the exit code is 128 + signal, stderr says how to resume.
    (Resuming after a fault all the way to identical weights is the SIGKILL test below.)"""
    run = tmp_path / "run"
    proc = _start_child(tiny_args(data, run), tmp_path / "stderr.txt")
    try:
        _wait_for_line(proc, "epoch 1/")
        proc.send_signal(signum)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 128 + signum, stderr
    assert f"{signal.Signals(signum).name} received" in stderr
    assert f"Resume with: python -m training.train --resume --out {run}" in stderr
    assert "Traceback" not in stderr
    assert not (run / "model.safetensors").exists()
    assert not list(run.rglob("*.tmp"))
    from models.registry import create_model
    from training.checkpoint import load_checkpoint
    from training.train import get_args_parser, resolve
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert 1 <= ckpt["epoch"] < EPOCHS
    assert len(json.loads((run / "history.json").read_text())) == ckpt["epoch"]
    # The checkpoint is accepted by --resume and its weights fit the model strictly.
    cfg = resolve(get_args_parser().parse_args(resume_args(data, run)))
    assert cfg.out == run and cfg.resume_from == run / "checkpoint.pt"
    create_model(cfg.spec.model).load_state_dict(ckpt["model"], strict=True)
    # TensorBoard was flushed and closed: the steps of every finished epoch are readable.
    logged = [s for s, _ in scalars(run)["train/step_loss"]]
    done = ckpt["epoch"] * STEPS_PER_EPOCH
    assert logged[:done] == list(range(1, done + 1))


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, data, straight, unchecked):
    """kill -9 while checkpoint.pt is being replaced: the old file survives intact, --resume
    cleans the half-written temporary file and finishes the same run as the straight one."""
    run = tmp_path / "run"
    proc = _start_child(tiny_args(data, run), tmp_path / "stderr.txt")
    try:
        _wait_for_line(proc, "epoch 1/")
        deadline = time.monotonic() + 300
        while not list(run.glob(".checkpoint.pt.*.tmp")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint write seen"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    from training.checkpoint import load_checkpoint
    ckpt = load_checkpoint(run / "checkpoint.pt")   # the previous (or the new) file, never half of one
    assert ckpt["epoch"] in (1, 2)
    run_main(resume_args(data, run))
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
                                            rf"checkpoint is {run / 'checkpoint.pt'} \(epoch 1\)$"):
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
    assert line.endswith(f"no release written; the last good checkpoint is {run / 'checkpoint.pt'} (epoch 0)")
    for release_file in ("model.safetensors", "metrics.json", "predictions.json", "SHA256SUMS", "README.md",
                         "history.json"):
        assert not (run / release_file).exists(), release_file
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 0


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
        f"error: {run / 'checkpoint.pt'}: cannot write (No space left on device); stopped at epoch 2; "
        f"{run / 'checkpoint.pt'} holds the last epoch it saved, resume with: python -m training.train --resume "
        f"--out {run}")
    from training.checkpoint import load_checkpoint
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1]
    assert not list(run.rglob("*.tmp")) and not (run / "model.safetensors").exists()


def test_a_second_signal_stops_at_once_without_a_traceback(tmp_path, data, unchecked):
    """Two Ctrl-C in a row: the second one stops at once (exit 130), one line says what is kept."""
    run = tmp_path / "run"
    proc = _start_child(tiny_args(data, run), tmp_path / "stderr.txt")
    try:
        _wait_for_line(proc, "epoch 1/")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    # The first signal's notice, then (whether the step had ended before the second arrived or not) what is kept.
    assert "SIGINT received: stopping after this step; the epoch in progress is discarded, the checkpoint of " \
           "the last finished epoch is kept" in stderr
    assert re.search(r"interrupted: (stopped at once|stopped) during epoch \d, which is discarded; the checkpoint "
                     r"of epoch \d is kept\. Resume with: python -m training\.train --resume --out ", stderr), stderr
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

WRITER = """
import sys
from models.atomic import atomic_write_bytes
path, size = sys.argv[1], int(sys.argv[2])
blobs = [bytes([65]) * size, bytes([66]) * (size + 7)]
print("ready", flush=True)
i = 0
while True:
    atomic_write_bytes(path, blobs[i % 2])
    i += 1
"""


def test_atomic_write_survives_sigkill_at_any_moment(tmp_path):
    from models.atomic import atomic_write_bytes, remove_stale_temps
    target = tmp_path / "file.bin"
    size = 4_000_000
    valid = {b"A" * size, b"B" * (size + 7)}
    atomic_write_bytes(target, b"A" * size)
    rng = random.Random(0)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(size)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            proc.kill()
            proc.wait()
        assert target.read_bytes() in valid
    remove_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
