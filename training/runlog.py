"""What a run writes while it trains: TensorBoard, history.json, checkpoint.pt, progress.json,
and what it tells the terminal (an opening line, a bar for the whole run, one line per epoch,
a line per checkpoint saved within an epoch, and on a stop what was kept).

progress.json (its fields: docs/run-directory.md) is rewritten atomically, at most every
PROGRESS_FILE_SECONDS during an epoch and at every change of status, so readers (the app's Train
tab and model list, scripts) see the last complete state, never a half-written file; with
--no-progress, the whole-run progress line is derived from the same numbers.

Only rank 0 writes; the other ranks open no TensorBoard writer, and take part only in what
needs every rank (a checkpoint's sums, training/midepoch.py).
"""
from __future__ import annotations

import os
import signal
import sys
import time

from tqdm import tqdm

from models.atomic import atomic_write_json, remove_stale_temps
from models.runs import PROGRESS_FILE
from training import distributed
from training.checkpoint import CHECKPOINT_FILE, rng_state, save_checkpoint
from training.midepoch import IntervalTimer, Position
from training.record import now_utc
from training.run_config import RunConfig
from training.signals import StopFlag

PROGRESS_LINE_SECONDS = 30   # with --no-progress: how often a whole-run progress line is printed
PROGRESS_FILE_SECONDS = 2.0  # how often progress.json is rewritten during an epoch, at most


class RunLog:
    def __init__(self, cfg: RunConfig, config: dict, parts, history: list[dict],
                 rank_info: distributed.DistInfo, *, resumed: bool):
        self.cfg, self.config, self.parts, self.history = cfg, config, parts, history
        self.is_main, self.resumed = rank_info.is_main, resumed
        self.run_dir = cfg.out
        self.ckpt_path = cfg.out / CHECKPOINT_FILE
        self.steps_per_epoch = len(parts.train_loader)
        self.epochs = cfg.recipe["epochs"]
        self.batch_size = cfg.recipe["batch_size"] * rank_info.world_size   # images per step, all ranks
        self.writer = None                                   # TensorBoard (rank 0, from open())
        self.epoch, self.step = 0, 0                         # the epoch in progress, its steps done
        self.last_val_accuracy = history[-1]["val_accuracy"] if history else None
        self.rate_marks = None                               # (time, global step) at the epoch's start and now
        self.last_write = float("-inf")                      # of progress.json
        self.timer = IntervalTimer(cfg.checkpoint_every_s)   # checkpoints within an epoch
        self.saved: Position | None = None                   # where checkpoint.pt stands
        self.bar = None                                      # the whole run's tqdm bar (rank 0, --progress)
        self.last_line = time.monotonic()

    def open(self, start: Position) -> None:
        self.saved = start if self.resumed else None
        if not self.is_main:
            return
        cfg, images = self.cfg, self.steps_per_epoch * self.batch_size
        where = f" at {start.describe(self.steps_per_epoch)}" if self.resumed else ""
        print(f"{'resuming' if self.resumed else 'training'} {cfg.task} ({cfg.variant.value}, preset {cfg.preset})"
              f"{where} in {self.run_dir}: device {self.config['device']}, precision {cfg.precision}, "
              f"{self.epochs} epochs of {images:,} images ({self.steps_per_epoch} steps of "
              f"{self.batch_size})", flush=True)
        if self.resumed:
            remove_stale_temps(self.run_dir)   # half-written files of a killed run (never the real ones)
        from torch.utils.tensorboard import SummaryWriter
        # TensorBoard steps count optimizer steps taken: step losses at 1..N, epoch E's scalars
        # at E * steps_per_epoch. On resume, purge_step drops whatever a killed or interrupted
        # run logged after the checkpoint, so every step has exactly one value.
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"),
                                    purge_step=start.global_step(self.steps_per_epoch) + 1 if self.resumed else None)
        if cfg.progress:
            self.bar = tqdm(total=self.epochs * self.steps_per_epoch, initial=start.global_step(self.steps_per_epoch),
                            desc="run", unit="step", dynamic_ncols=True)
        if not self.resumed:
            self.save_checkpoint(Position(0))   # a resumable point before the first step

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def say(self, message: str) -> None:
        """A line on stdout (rank 0) that leaves the progress bars whole, flushed for readers of a pipe."""
        if self.is_main:
            tqdm.write(message, file=sys.stdout)
            sys.stdout.flush()

    # --- progress: rate, ETAs, progress.json --------------------------------------------------
    def global_step(self) -> int:
        return Position(self.epoch - 1, self.step).global_step(self.steps_per_epoch) if self.epoch else 0

    def etas(self) -> tuple[float | None, float | None, float | None]:
        """(steps per second since the epoch (or this invocation) started, epoch ETA, run ETA)."""
        (t0, s0), (t1, s1) = self.rate_marks or ((0, 0), (0, 0))
        if not (t1 > t0 and s1 > s0):
            return None, None, None
        rate = (s1 - s0) / (t1 - t0)
        return (rate, (self.steps_per_epoch - self.step) / rate,
                (self.epochs * self.steps_per_epoch - self.global_step()) / rate)

    def write_progress(self, status: str, message: str = "", *, force: bool = False) -> None:
        """Rewrite progress.json (rank 0), at most every PROGRESS_FILE_SECONDS unless `force`."""
        if not self.is_main or (not force and time.monotonic() - self.last_write < PROGRESS_FILE_SECONDS):
            return
        self.last_write = time.monotonic()
        rate, epoch_eta, run_eta = self.etas() if status == "training" else (self.etas()[0], None, None)
        facts = {k: self.config.get(k) for k in ("task", "variant", "preset", "run_name", "device", "precision")}
        try:
            atomic_write_json(self.run_dir / PROGRESS_FILE, {
                "status": status, **facts, "pid": os.getpid(), "epoch": self.epoch, "epochs": self.epochs,
                "step": self.step, "steps_per_epoch": self.steps_per_epoch,
                "images_per_epoch": self.steps_per_epoch * self.batch_size,
                "images_per_s": round(rate * self.batch_size, 2) if rate else None,
                "epoch_eta_s": None if epoch_eta is None else round(epoch_eta, 1),
                "run_eta_s": None if run_eta is None else round(run_eta, 1),
                "last_val_accuracy": self.last_val_accuracy, "message": message, "updated": now_utc()})
        except OSError:
            pass   # progress is informative; a full disk must not stop training here

    def progress_line(self) -> str:
        """One line for the terminal (--no-progress): the whole run at a glance."""
        rate, epoch_eta, run_eta = self.etas()
        eta = lambda s: "?" if s is None else tqdm.format_interval(s)   # noqa: E731
        parts = [f"run: epoch {self.epoch}/{self.epochs}", f"step {self.step}/{self.steps_per_epoch}",
                 f"{rate * self.batch_size:.0f} img/s" if rate else "img/s ?",
                 f"epoch ETA {eta(epoch_eta)}", f"run ETA {eta(run_eta)}"]
        if self.last_val_accuracy is not None:
            parts.append(f"last val acc {self.last_val_accuracy:.4f}")
        return "  ".join(parts)

    # --- checkpoints --------------------------------------------------------------------------
    def save_checkpoint(self, position: Position, partial_epoch: dict | None = None) -> None:
        """Rank 0 writes checkpoint.pt (atomically); every rank restarts its interval timer."""
        if self.is_main:
            self.writer.flush()   # TensorBoard holds every step up to the checkpoint before it exists
            p = self.parts
            save_checkpoint(self.ckpt_path, {
                "model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "scheduler": p.scheduler.state_dict() if p.scheduler is not None else None,
                "epoch": position.epoch, "step": position.step, "partial_epoch": partial_epoch,
                "history": self.history, "rng": rng_state(), "config": self.config})
            self.saved = position
        self.timer.reset()

    def kept(self) -> str:
        return (self.saved or Position(0)).describe(self.steps_per_epoch)

    # --- steps and epochs ---------------------------------------------------------------------
    def start_epoch(self, epoch: int, step: int = 0) -> None:
        self.epoch, self.step = epoch, step
        self.rate_marks = ((time.monotonic(), self.global_step()),) * 2
        self.write_progress("training", force=True)
        if self.bar is not None:
            last = self.last_val_accuracy
            self.bar.set_description(f"run: epoch {epoch}/{self.epochs}", refresh=False)
            self.bar.set_postfix_str(f"last val acc {last:.4f}" if last is not None else "", refresh=True)

    def evaluating(self, epoch: int) -> None:
        self.write_progress("evaluating", force=True)
        if self.bar is not None:
            self.bar.set_postfix_str(f"evaluating epoch {epoch}", refresh=True)

    def step_done(self, step: int, loss: float, lr: float) -> None:
        self.step = step + 1
        self.scalar("train/step_loss", loss, self.global_step())
        self.scalar("train/lr", lr, self.global_step())
        self.rate_marks = (self.rate_marks[0], (time.monotonic(), self.global_step()))
        self.write_progress("training")
        if self.bar is not None:
            self.bar.update(1)   # redrawn at most every 0.1 s (tqdm's mininterval), with the run's rate and ETA
        elif self.is_main and time.monotonic() - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = time.monotonic()   # the whole run at a glance: epoch k/n, run ETA
            print(self.progress_line(), file=sys.stderr, flush=True)

    def epoch_done(self, row: dict) -> None:
        self.history.append(row)
        self.last_val_accuracy = float(row["val_accuracy"])
        if self.bar is not None:
            self.bar.set_postfix_str(f"last val acc {row['val_accuracy']:.4f}", refresh=False)
        step = row["epoch"] * self.steps_per_epoch
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            self.scalar(key.replace("_", "/", 1), row[key], step)
        self.scalar("train/images_per_second", row["images_per_s"], step)   # lr: per step, above
        # The checkpoint first: history.json is never ahead of what --resume can continue from.
        self.save_checkpoint(Position(row["epoch"]))
        if self.is_main:
            atomic_write_json(self.run_dir / "history.json", self.history)
            self.say(f"epoch {row['epoch']}/{self.epochs}  train loss {row['train_loss']:.4f} "
                     f"acc {row['train_accuracy']:.4f}  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
                     f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  {row['seconds']:.1f}s")

    # --- endings ------------------------------------------------------------------------------
    def _stopped(self, message: str, file) -> None:
        """progress.json says "stopped", at where checkpoint.pt stands (its epoch and step); the terminal says why."""
        saved = self.saved or Position(0)
        if saved.step:
            self.epoch, self.step = saved.epoch + 1, saved.step
        else:
            self.epoch, self.step = saved.epoch, self.steps_per_epoch if saved.epoch else 0
        self.write_progress("stopped", message, force=True)
        print(message, file=file, flush=True)

    def stopped_as_asked(self, epoch: int) -> None:
        self.close()
        if self.is_main:
            self._stopped(f"stopped after epoch {epoch} as asked; continue with: "
                          f"python -m training.train --resume --out {self.run_dir}", sys.stdout)

    def interrupted(self, stop: StopFlag, signum: int | None = None):
        """Say what was kept and how to resume ("stopped at epoch 2, step 117 of 468; checkpoint saved
        at that step ..."; a second signal: "stopped at once during ..."), then exit with the signal's
        shell code (130 for Ctrl-C, 143 for SIGTERM)."""
        during = f"epoch {self.epoch} (step {self.step} of {self.steps_per_epoch})"
        self.close()
        if self.is_main:
            resume = f"resume with: python -m training.train --resume --out {self.run_dir}"
            if signum:
                message = (f"stopped at once during {during}; the last checkpoint saved is kept: "
                           f"{self.kept()} ({self.ckpt_path}); {resume}")
            else:
                where = "at that step" if self.saved and self.saved.step else "there"
                message = f"stopped at {self.kept()}; checkpoint saved {where} ({self.ckpt_path}); {resume}"
            self._stopped(message, sys.stderr)
        raise SystemExit(128 + (signum or stop.signal or signal.SIGINT))

    def finished(self, ev: dict) -> None:
        self.epoch, self.step = self.epochs, self.steps_per_epoch
        self.write_progress("finished", f"done: val accuracy {ev['accuracy']:.4f} on {ev['num_images']} images",
                            force=True)

    def failed(self, message: str) -> None:
        self.close()
        self.write_progress("failed", message, force=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
