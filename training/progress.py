"""What a running training job reports: `progress.json` in the run directory, rewritten atomically.

Readers (the app's Train tab and model list, scripts) see the last complete state, never a
half-written file; its fields are listed in docs/run-directory.md. The file is rewritten at most
every `interval` seconds during an epoch, and at every change of status; with --no-progress, the
CLI's whole-run progress line is derived from the same numbers.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from models.atomic import atomic_write_json
from models.runs import PROGRESS_FILE
from training.record import now_utc


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RunProgress:
    """Whole-run progress: step rate, ETAs, and the progress.json that says so."""

    def __init__(self, run_dir: Path | None, config: dict, *, epochs: int, steps_per_epoch: int,
                 batch_size: int, interval: float = 2.0, clock=time.monotonic) -> None:
        self.path = None if run_dir is None else Path(run_dir) / PROGRESS_FILE
        self.epochs, self.steps_per_epoch, self.batch_size = epochs, steps_per_epoch, batch_size
        self.interval, self.clock = interval, clock
        self.facts = {k: config.get(k) for k in ("task", "variant", "preset", "run_name", "device", "precision")}
        self.epoch, self.step = 0, 0
        self.last_val_accuracy: float | None = None
        self._marks: list[tuple[float, int]] = []   # (time, global step) of recent steps, for the rate
        self._last_write = float("-inf")

    # --- numbers ------------------------------------------------------------------------------
    @property
    def global_step(self) -> int:
        return (self.epoch - 1) * self.steps_per_epoch + self.step if self.epoch else 0

    def steps_per_s(self) -> float | None:
        if len(self._marks) < 2:
            return None
        (t0, s0), (t1, s1) = self._marks[0], self._marks[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 and s1 > s0 else None

    def etas(self) -> tuple[float | None, float | None]:
        rate = self.steps_per_s()
        if not rate:
            return None, None
        epoch_left = self.steps_per_epoch - self.step
        run_left = self.epochs * self.steps_per_epoch - self.global_step
        return epoch_left / rate, run_left / rate

    def state(self, status: str, message: str = "") -> dict:
        rate = self.steps_per_s()
        epoch_eta, run_eta = self.etas() if status == "training" else (None, None)
        return {"status": status, **self.facts, "pid": os.getpid(),
                "epoch": self.epoch, "epochs": self.epochs, "step": self.step,
                "steps_per_epoch": self.steps_per_epoch, "images_per_epoch": self.steps_per_epoch * self.batch_size,
                "images_per_s": round(rate * self.batch_size, 2) if rate else None,
                "epoch_eta_s": None if epoch_eta is None else round(epoch_eta, 1),
                "run_eta_s": None if run_eta is None else round(run_eta, 1),
                "last_val_accuracy": self.last_val_accuracy, "message": message,
                "updated": now_utc()}

    def line(self) -> str:
        """One line for the terminal: the whole run at a glance."""
        epoch_eta, run_eta = self.etas()
        rate = self.steps_per_s()
        parts = [f"run: epoch {self.epoch}/{self.epochs}", f"step {self.step}/{self.steps_per_epoch}",
                 f"{rate * self.batch_size:.0f} img/s" if rate else "img/s ?",
                 f"epoch ETA {format_seconds(epoch_eta)}", f"run ETA {format_seconds(run_eta)}"]
        if self.last_val_accuracy is not None:
            parts.append(f"last val acc {self.last_val_accuracy:.4f}")
        return "  ".join(parts)

    # --- events -------------------------------------------------------------------------------
    def start_epoch(self, epoch: int, step: int = 0) -> None:
        self.epoch, self.step = epoch, step
        self._marks = [(self.clock(), self.global_step)]
        self.write("training", force=True)

    def on_step(self, step_in_epoch: int) -> None:
        """Record a finished step (1-based in the epoch)."""
        self.step = step_in_epoch
        self._marks.append((self.clock(), self.global_step))
        if len(self._marks) > 50:
            del self._marks[1:len(self._marks) - 49]   # keep the epoch's start: a steadier rate early on
        self.write("training")

    def end_epoch(self, val_accuracy: float) -> None:
        self.last_val_accuracy = float(val_accuracy)

    def write(self, status: str, message: str = "", *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        if self.path is not None:
            try:
                atomic_write_json(self.path, self.state(status, message))
            except OSError:
                pass   # progress is informative; a full disk must not stop training here
