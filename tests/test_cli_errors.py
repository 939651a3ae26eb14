"""The command-line tools refuse what cannot work in one line, exit non-zero, print no traceback,
and leave nothing behind: bad flags, wrong data folders, no network, unwritable outputs, full disks.

Each case drives the real parser and main through `training.cli.run_cli` (what `python -m` runs)
and checks the exit code, that stderr is exactly one line naming the problem, and the disk.
The network is refused at the socket (as offline), so torchvision's real download code runs
up to the connection and fails as it would without a network.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from models.tasks import get_task
from training.cli import run_cli


@pytest.fixture
def offline(monkeypatch):
    """Every connection attempt fails as on a machine without a network."""
    def unreachable(*args, **kwargs):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(socket.socket, "connect", unreachable)
    monkeypatch.setattr(socket, "getaddrinfo", unreachable)


def tree(folder: Path) -> dict[str, str]:
    """Every path under `folder` with its content digest (folders as 'dir')."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def refused(capsys, code: int, *, exit_code: int = 1) -> str:
    """The one stderr line of a refused command (asserts the exit code and the absence of a traceback).

    A bad flag (exit 2) is argparse's usual answer: the usage lines, then one line naming the flag.
    """
    captured = capsys.readouterr()
    assert code == exit_code, captured.err
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    if exit_code == 2:
        assert lines[0].startswith("usage: ") and ": error: argument " in lines[-1], captured.err
        return lines[-1]
    assert len(lines) == 1, captured.err
    return lines[0]


def read_only_folder(tmp_path: Path) -> Path:
    """A folder in which no file can be created, even by root (tests run as root in CI).

    Permission bits do not stop root; sysfs refuses new files to everyone. As another user, a
    chmod 0555 folder does it.
    """
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if Path("/sys/kernel").is_dir():
        return Path("/sys/kernel")
    pytest.skip("running as root without /sys: no folder refuses writes to root here")


# --- evaluate ---------------------------------------------------------------------------------

def evaluate(argv: list[str]) -> int:
    from training.evaluate import get_args_parser, main
    from models.artifact import ArtifactError
    from training.data import DatasetError
    return run_cli(main, get_args_parser(), argv, errors=(ArtifactError, DatasetError))


@pytest.fixture
def run_copy(mnist_run, tmp_path) -> Path:
    run = tmp_path / "mnist" / "run"
    shutil.copytree(mnist_run, run, ignore=shutil.ignore_patterns("checkpoint.pt", "tb"))
    return run


def test_evaluate_predictions_into_a_read_only_folder(run_copy, mnist_dir, tmp_path, capsys):
    folder = read_only_folder(tmp_path)
    before = tree(run_copy)
    line = refused(capsys, evaluate([str(run_copy), "--data-dir", str(mnist_dir), "--device", "cpu",
                                     "--predictions", str(folder / "predictions.json")]))
    assert line.startswith(f"error: --predictions {folder}: cannot create files in {folder} (")
    assert not (folder / "predictions.json").exists() and tree(run_copy) == before


def test_evaluate_predictions_where_a_folder_is_a_file(run_copy, mnist_dir, tmp_path, capsys):
    (tmp_path / "plain-file").write_text("x")
    line = refused(capsys, evaluate([str(run_copy), "--data-dir", str(mnist_dir), "--device", "cpu",
                                     "--predictions", str(tmp_path / "plain-file" / "p.json")]))
    assert line == f"error: --predictions {tmp_path / 'plain-file'}: {tmp_path / 'plain-file'} is a file, not a folder"


def test_evaluate_predictions_into_the_run_keeps_its_digests(run_copy, mnist_dir, capsys):
    from models.artifact import load_model
    (run_copy / "predictions.json").unlink()
    assert evaluate([str(run_copy), "--data-dir", str(mnist_dir), "--device", "cpu", "--predictions"]) == 0
    sums = dict(reversed(line.split("  ", 1)) for line in (run_copy / "SHA256SUMS").read_text().splitlines())
    assert sums["predictions.json"] == hashlib.sha256((run_copy / "predictions.json").read_bytes()).hexdigest()
    load_model(run_copy)   # every listed file still matches


def test_evaluate_refuses_damaged_weights(run_copy, mnist_dir, capsys):
    from tests.test_model_files import flip_weight_bytes
    flip_weight_bytes(run_copy / "model.safetensors")
    line = refused(capsys, evaluate([str(run_copy), "--data-dir", str(mnist_dir), "--device", "cpu"]))
    assert line.startswith(f"error: {run_copy / 'model.safetensors'}: damaged or changed after the run was written")


@pytest.mark.parametrize("flag, value, problem", [
    ("--batch-size", "0", "must be at least 1, got 0"),
    ("--limit-val", "-3", "must be at least 1, got -3"),
    ("--seed", "x", "must be an integer, got 'x'"),
])
def test_evaluate_flags_out_of_range(flag, value, problem, capsys):
    with pytest.raises(SystemExit) as stop:
        evaluate(["runs/x", flag, value])
    assert refused(capsys, stop.value.code, exit_code=2) == \
        f"python -m training.evaluate: error: argument {flag}: {problem}"


# --- data folders (training.data, for train and evaluate alike) -------------------------------

def load(task_name: str, data_dir: Path):
    from training.data import find_source, load_split
    from models.tasks import get_task
    task = get_task(task_name)
    source = find_source(task, data_dir)
    return [load_split(task, source, data_dir, train=train, limit=4) for train in (True, False)]


@pytest.mark.parametrize("task_name", ["mnist", "cifar10", "catsdogs"])
def test_a_missing_data_folder_offline_creates_nothing_and_says_what_to_do(task_name, tmp_path, offline):
    from training.data import DatasetError
    before = tree(tmp_path)
    missing = tmp_path / "nope" / "deeper"
    with pytest.raises(DatasetError) as err:
        load(task_name, missing)
    message = str(err.value)
    assert message.startswith(f"{get_task(task_name).dataset.name}: not found in {missing} and downloading it failed (")
    assert f"Offline, copy those files into {missing} or point --data-dir at a folder that has them" in message
    assert "\n" not in message
    assert tree(tmp_path) == before, "a failed start left files or folders behind"


@pytest.mark.parametrize("task_name", ["cifar10", "catsdogs"])
def test_an_empty_data_folder_offline_stays_empty(task_name, tmp_path, offline):
    from training.data import DatasetError
    dataset = get_task(task_name).dataset
    with pytest.raises(DatasetError, match=rf"^{re.escape(dataset.name)}: not found in {tmp_path} and downloading "
                                           r"it failed") as err:
        load(task_name, tmp_path)
    assert dataset.layout in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_data_folder(tmp_path):
    from training.data import DatasetError
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(DatasetError, match=rf"^--data-dir {tmp_path / 'data'}: is a file, not a folder; "
                                           r"mnist expects a folder holding MNIST/raw/"):
        load("mnist", tmp_path / "data")


def test_catsdogs_class_folders_alone_are_split_by_seed(catsdogs_dir, offline):
    """--data-dir pointing at cat/ and dog/ themselves (not train/ and val/) is the layout of your own
    images: a seeded validation split, recorded; nothing is written into the folder."""
    from training.data import find_source
    before = tree(catsdogs_dir)
    source = find_source(get_task("catsdogs"), catsdogs_dir / "train")
    assert source.dataset.local and source.labels == ("cat", "dog") and "seeded" in source.validation
    train, val = load("catsdogs", catsdogs_dir / "train")
    assert not set(train.images.files) & set(val.images.files)
    assert tree(catsdogs_dir) == before


def test_catsdogs_train_without_val(tmp_path, offline):
    from tests.datagen import write_catsdogs
    from training.data import DatasetError
    root = write_catsdogs(tmp_path / "cd", train_per_class=2, val_per_class=1, corrupt=False)
    shutil.rmtree(root / "val")
    with pytest.raises(DatasetError, match=r"has train/ but no val/; an image folder with splits needs both"):
        load("catsdogs", root)
    assert not (root / "oxford-iiit-pet").exists()


# --- strict JSON, diverged runs -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_files_are_strict_json(tmp_path, bad):
    from models.atomic import atomic_write_json
    target = tmp_path / "history.json"
    target.write_text("[]\n")
    with pytest.raises(ValueError, match=rf"^{target}: not written, the data holds a value JSON cannot represent"):
        atomic_write_json(target, [{"epoch": 1, "val_loss": bad}])
    assert target.read_text() == "[]\n" and [p.name for p in tmp_path.iterdir()] == ["history.json"]


def test_every_json_writer_in_the_project_refuses_nan():
    """Python's json writes NaN/Infinity by default (not JSON); every call in the project says allow_nan=False."""
    import ast
    root = Path(__file__).resolve().parents[1]
    lax = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("tests", ".git") or any(part.startswith(".") for part in rel.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("dump", "dumps") and getattr(node.func.value, "id", None) == "json":
                strict = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                             for k in node.keywords)
                if not strict:
                    lax.append(f"{rel}:{node.lineno}")
    assert not lax, f"json.dump(s) without allow_nan=False: {lax}"


def test_non_finite_weights_or_metrics_are_a_divergence():
    import torch
    from training.divergence import DivergedError, check_epoch
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    good = {"loss": 0.5, "accuracy": 0.5, "per_class_accuracy": {"a": 1.0, "b": None},
            "probabilities": torch.full((2, 2), 0.5)}
    check_epoch(3, model, good)
    with pytest.raises(DivergedError, match=r"^the run diverged at epoch 3: non-finite evaluation loss$"):
        check_epoch(3, model, {**good, "loss": float("nan")})
    with pytest.raises(DivergedError, match=r"evaluation per_class_accuracy\[a\], probabilities$"):
        check_epoch(3, model, {**good, "per_class_accuracy": {"a": float("inf")},
                               "probabilities": torch.tensor([[float("nan"), 1.0]])})
    model[1].running_var.fill_(float("inf"))
    with pytest.raises(DivergedError, match=r"^the run diverged at epoch 4: non-finite weights \(1\.running_var\)$"):
        check_epoch(4, model, good)


# --- training CLI (python -m training.train) ------------------------------------------------------

def train(argv: list[str]) -> int:
    from models.artifact import ArtifactError
    from training.checkpoint import CheckpointError
    from training.data import DatasetError
    from training.divergence import DivergedError
    from training.train import get_args_parser, main
    return run_cli(main, get_args_parser(), argv,
                   errors=(CheckpointError, DatasetError, DivergedError, ArtifactError))


def train_argv(data_dir: Path, out: Path, *extra: str, task: str = "mnist") -> list[str]:
    return ["--task", task, "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1", "--limit-train", "8",
            "--limit-val", "8", "--batch-size", "4", "--device", "cpu", "--no-progress", "--workers", "1", *extra]


@pytest.mark.parametrize("flag, value, problem", [
    ("--batch-size", "0", "must be at least 1, got 0"),
    ("--batch-size", "-5", "must be at least 1, got -5"),
    ("--epochs", "0", "must be at least 1, got 0"),
    ("--epochs", "-1", "must be at least 1, got -1"),
    ("--limit-train", "0", "must be at least 1, got 0"),
    ("--limit-val", "0", "must be at least 1, got 0"),
    ("--lr", "nan", "must be a finite number above 0, got nan"),
    ("--lr", "-0.1", "must be a finite number above 0, got -0.1"),
    ("--lr", "inf", "must be a finite number above 0, got inf"),
    ("--lr", "0", "must be a finite number above 0, got 0"),
    ("--epochs", "two", "must be an integer, got 'two'"),
    ("--seed", "-1", "must be 0 or more, got -1"),
    ("--stop-after", "0", "must be at least 1, got 0"),
])
def test_train_flags_out_of_range_are_refused_by_the_parser(flag, value, problem, tmp_path, capsys):
    argv = [a for a in train_argv(tmp_path / "data", tmp_path / "run")]
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
    with pytest.raises(SystemExit) as stop:
        train(argv)
    assert refused(capsys, stop.value.code, exit_code=2) == \
        f"python -m training.train: error: argument {flag}: {problem}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task_name", ["mnist", "cifar10", "catsdogs"])
def test_train_with_a_missing_data_folder_offline(task_name, tmp_path, capsys, offline):
    line = refused(capsys, train(train_argv(tmp_path / "nope", tmp_path / "run", task=task_name)))
    assert line.startswith(f"error: {get_task(task_name).dataset.name}: not found in {tmp_path / 'nope'} and downloading it "
                           "failed (")
    assert line.endswith(f"Offline, copy those files into {tmp_path / 'nope'} or point --data-dir at a folder "
                         f"that has them")
    assert list(tmp_path.iterdir()) == [], "a failed start created files or folders"


@pytest.mark.parametrize("task_name", ["cifar10", "catsdogs"])
def test_train_with_an_empty_data_folder_offline(task_name, tmp_path, capsys, offline):
    (tmp_path / "data").mkdir()
    line = refused(capsys, train(train_argv(tmp_path / "data", tmp_path / "run", task=task_name)))
    assert line.startswith(f"error: {get_task(task_name).dataset.name}: not found in {tmp_path / 'data'} and downloading it "
                           "failed (")
    assert list(tmp_path.iterdir()) == [tmp_path / "data"] and list((tmp_path / "data").iterdir()) == []


def test_train_with_a_file_as_data_folder(tmp_path, capsys):
    (tmp_path / "data").write_text("x")
    line = refused(capsys, train(train_argv(tmp_path / "data", tmp_path / "run")))
    assert line.startswith(f"error: --data-dir {tmp_path / 'data'}: is a file, not a folder; mnist expects a "
                           f"folder holding MNIST/raw/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_train_into_a_read_only_folder(mnist_dir, tmp_path, capsys):
    folder = read_only_folder(tmp_path)
    line = refused(capsys, train(train_argv(mnist_dir, folder / "run")))
    assert line.startswith(f"error: --out {folder / 'run'}: cannot create files in {folder} (")
    assert not (folder / "run").exists()


def test_train_out_below_a_file(mnist_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    line = refused(capsys, train(train_argv(mnist_dir, tmp_path / "file" / "run")))
    assert line == f"error: --out {tmp_path / 'file' / 'run'}: {tmp_path / 'file'} is a file, not a folder"


def test_train_interrupted_before_training_prints_one_line(mnist_dir, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the data loads (before the signal handler is installed) is no traceback either."""
    import training.train as train_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_module, "load_data", interrupted)
    line = refused(capsys, train(train_argv(mnist_dir, tmp_path / "run")), exit_code=130)
    assert line == "interrupted: stopped at once; files written before are kept as they were"


# --- the run folder is one run's while it trains --------------------------------------------------

def test_two_runs_into_one_out_folder_one_trains_the_other_is_told_who_holds_it(mnist_dir, tmp_path):
    """Three runs started together into the same --out: one finishes, each other gets one line naming
    the holder (pid), and what is left is the finished run's folder (issue 23 §7)."""
    import subprocess
    import sys
    from tests.conftest import REPO
    out = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "training.train", *train_argv(mnist_dir, out, "--epochs", "2")],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1, 1], results
    for code, err in results:
        if code:
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert re.fullmatch(rf"error: --out {re.escape(str(out))}: another training run is writing there \(pid "
                                r"\d+, started [\d: -]+\); wait for it to end, or choose another --out", err.strip()), err
    assert (out / "model.safetensors").is_file() and not (out / ".training.lock").exists()


def test_a_full_disk_is_one_line_naming_the_file_and_the_space_it_needs(mnist_dir, tmp_path):
    """A real write failure in the operating system (a file-size limit, as a full disk fails a write):
    the checkpoint is serialised in memory and written by Python, so the answer is one line, not
    torch's inline_container traceback, and no temporary file is left."""
    import resource
    import signal as signals
    import subprocess
    import sys
    from tests.conftest import REPO

    def small_files_only():
        signals.signal(signals.SIGXFSZ, signals.SIG_IGN)           # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 2**20, 4 * 2**20))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "training.train", *train_argv(mnist_dir, out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, preexec_fn=small_files_only)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.fullmatch(rf"error: {re.escape(str(out / 'checkpoint.pt'))}: cannot write \(File too large; it needs "
                        r"\d+ MiB\)", done.stderr.strip()), done.stderr
    assert not list(out.rglob("*.tmp")) and not (out / "checkpoint.pt").exists()
