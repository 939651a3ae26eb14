"""Find run directories on disk: `<root>/<task>/<run>/` holding config.json + model.safetensors.

Only the two files that make a run loadable are required ("complete"); everything else
(history, metrics, card, examples) is optional and read when present. Nothing here loads
weights: discovery reads config.json only, so listing many runs is cheap.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.artifact import CONFIG_FILE, WEIGHTS_FILE
from models.jsonfile import run_file, try_read_json
from models.tasks import TASKS, Variant


@dataclass(frozen=True)
class RunRef:
    """A run directory found on disk, described by its config.json (weights not loaded)."""
    path: Path
    task: str          # config.json "task" (cifar10 | mnist | catsdogs | ...)
    variant: Variant   # config.json "variant" (baseline | random-erasing)
    run_name: str      # config.json "run_name", else the folder name
    created: str       # config.json "created" (ISO 8601), else "" (sorts oldest)

    @property
    def key(self) -> str:
        """A short, stable name: `<task folder>/<run folder>` (never an absolute path)."""
        return f"{self.path.parent.name}/{self.path.name}"


def read_run(path: str | os.PathLike) -> RunRef | None:
    """The RunRef of `path` when it holds config.json + model.safetensors and a readable
    config with a task; None otherwise (an incomplete or foreign folder)."""
    path = Path(path)
    if run_file(path, WEIGHTS_FILE) is None:
        return None
    info = try_read_json(path, CONFIG_FILE)
    if not isinstance(info, dict) or not isinstance(info.get("task"), str):
        return None
    try:
        variant = Variant.of(info)
    except ValueError:      # not a variant CNN Studio knows: not one of its runs
        return None
    return RunRef(path=path, task=info["task"], variant=variant,
                  run_name=str(info.get("run_name") or path.name),
                  created=str(info.get("created") or ""))


def run_folders(root: str | os.PathLike) -> list[Path]:
    """Every `<root>/<task>/<run>/` folder (hidden ones, and links out of `root`, left out), sorted;
    none for a missing `root`."""
    root = Path(root)
    if not root.is_dir():
        return []
    real_root = root.resolve()

    def visible(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and p.resolve().is_relative_to(real_root))
    return [run_dir for task_dir in visible(root) for run_dir in visible(task_dir)]


def discover_runs(root: str | os.PathLike) -> list[RunRef]:
    """Every complete run under `root` (`<root>/<task>/<run>/`), newest first.

    Newest is by config.json "created", then by run name (timestamps), then by the
    weights' modification time. A missing `root` gives an empty list.
    """
    found = [ref for ref in map(read_run, run_folders(root)) if ref is not None]

    def newest_first(ref: RunRef):
        try:
            mtime = (ref.path / WEIGHTS_FILE).stat().st_mtime
        except OSError:
            mtime = 0.0
        return (ref.created, ref.run_name, mtime)

    return sorted(found, key=newest_first, reverse=True)


# --- runs still training ------------------------------------------------------------------------

PROGRESS_FILE = "progress.json"     # written by training/runlog.py while a run trains
CHECKPOINT_FILE = "checkpoint.pt"   # resume state (training/checkpoint.py)


@dataclass(frozen=True)
class UnfinishedRun:
    """A run folder without release weights yet: training, stopped (resumable), or failed."""
    path: Path
    task: str
    variant: str
    status: str                   # progress.json "status", or "stopped" for a bare checkpoint
    epoch: int | None = None      # epoch in progress (or last finished, when stopped)
    epochs: int | None = None
    last_val_accuracy: float | None = None
    message: str = ""
    alive: bool = False           # its training process is still running (same machine)
    key = RunRef.key              # `<task folder>/<run folder>`

    def describe(self) -> str:
        """One line, e.g. 'training: epoch 3 of 40, last test accuracy 98.12%' (the split its task evaluates on)."""
        where = f"epoch {self.epoch} of {self.epochs}" if self.epoch is not None and self.epochs else ""
        split = TASKS[self.task].dataset.val_split if self.task in TASKS else "validation"
        acc = f"last {split} accuracy {self.last_val_accuracy:.2%}" if self.last_val_accuracy is not None else ""
        status = self.status
        if status in ("training", "evaluating") and not self.alive:
            status = "stopped (its process ended)"
        if status.startswith("stopped"):
            status += ", resumable"
        return f"{status}: " + ", ".join(p for p in (where, acc) if p) if (where or acc) else status


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_unfinished(path: str | os.PathLike) -> UnfinishedRun | None:
    """The UnfinishedRun of `path` when it has progress.json or checkpoint.pt but no release weights."""
    path = Path(path)
    if (path / WEIGHTS_FILE).is_file():
        return None
    progress = try_read_json(path, PROGRESS_FILE)
    if not isinstance(progress, dict):
        if not (path / CHECKPOINT_FILE).is_file():
            return None
        progress = {"status": "stopped"}   # an older run: a checkpoint, nothing else known without loading it
    folder_task, folder_variant = Variant.from_folder(path.parent.name)
    task = progress.get("task") if isinstance(progress.get("task"), str) else folder_task
    variant = progress.get("variant") if isinstance(progress.get("variant"), str) else folder_variant
    number = lambda v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else None  # noqa: E731
    return UnfinishedRun(path=path, task=task, variant=variant, status=str(progress.get("status") or "stopped"),
                         epoch=number(progress.get("epoch")), epochs=number(progress.get("epochs")),
                         last_val_accuracy=number(progress.get("last_val_accuracy")),
                         message=str(progress.get("message") or ""), alive=_pid_alive(progress.get("pid")))


def discover_unfinished(root: str | os.PathLike) -> list[UnfinishedRun]:
    """Every run folder under `root` that is training or stopped before writing its weights."""
    return [run for run in map(read_unfinished, run_folders(root)) if run is not None]
