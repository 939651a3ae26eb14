"""What a run writes while it trains: TensorBoard, history.json, checkpoint.pt, progress.json,
and what it tells the terminal (an opening line, a bar for the whole run, one line per epoch,
a line per checkpoint saved within an epoch, and on a stop what was kept).

Only rank 0 writes; the other ranks open no TensorBoard writer, and take part only in what
needs every rank (a checkpoint's sums, training/midepoch.py).
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

from models.atomic import atomic_write_json, remove_stale_temps
from training import distributed
from training.checkpoint import CHECKPOINT_FILE, config_hash, rng_state, save_checkpoint
from training.midepoch import IntervalTimer, Position
from training.progress import RunProgress
from training.run_config import RunConfig
from training.signals import StopFlag, exit_code, interrupted_message

PROGRESS_LINE_SECONDS = 30   # with --no-progress: how often a whole-run progress line is printed


class RunLog:
    def __init__(self, cfg: RunConfig, config: dict, parts, history: list[dict],
                 rank_info: distributed.DistInfo, *, resumed: bool):
        self.cfg, self.config, self.parts, self.history = cfg, config, parts, history
        self.is_main, self.resumed = rank_info.is_main, resumed
        self.run_dir = cfg.out
        self.ckpt_path = cfg.out / CHECKPOINT_FILE
        self.steps_per_epoch = len(parts.train_loader)
        self.epochs = cfg.recipe["epochs"]
        self.writer = None                                   # TensorBoard (rank 0, from open())
        self.progress = RunProgress(self.run_dir if self.is_main else None, config, epochs=self.epochs,
                                    steps_per_epoch=self.steps_per_epoch,
                                    batch_size=cfg.recipe["batch_size"] * rank_info.world_size)
        self.progress.last_val_accuracy = history[-1]["val_accuracy"] if history else None
        self.timer = IntervalTimer(cfg.checkpoint_every_s)   # checkpoints within an epoch
        self.saved: Position | None = None                   # where checkpoint.pt stands
        self.bar = None                                      # the whole run's tqdm bar (rank 0, --progress)
        self.last_line = time.monotonic()

    def open(self, start: Position) -> None:
        self.saved = start if self.resumed else None
        if not self.is_main:
            return
        cfg, images = self.cfg, self.steps_per_epoch * self.progress.batch_size
        where = f" at {start.describe(self.steps_per_epoch)}" if self.resumed else ""
        print(f"{'resuming' if self.resumed else 'training'} {cfg.task} ({cfg.variant.value}, preset {cfg.preset})"
              f"{where} in {self.run_dir}: device {self.config['device']}, precision {cfg.precision}, "
              f"{self.epochs} epochs of {images:,} images ({self.steps_per_epoch} steps of "
              f"{self.progress.batch_size})", flush=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
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

    # --- checkpoints --------------------------------------------------------------------------
    def checkpoint_state(self, position: Position, partial_epoch: dict | None) -> dict:
        p = self.parts
        return {"model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "scheduler": p.scheduler.state_dict() if p.scheduler is not None else None,
                "epoch": position.epoch, "step": position.step, "partial_epoch": partial_epoch,
                "history": self.history, "rng": rng_state(), "config": self.config,
                "config_hash": config_hash(self.config)}

    def save_checkpoint(self, position: Position, partial_epoch: dict | None = None) -> None:
        """Rank 0 writes checkpoint.pt (atomically); every rank restarts its interval timer."""
        if self.is_main:
            self.writer.flush()   # TensorBoard holds every step up to the checkpoint before it exists
            save_checkpoint(self.ckpt_path, self.checkpoint_state(position, partial_epoch))
            self.saved = position
        self.timer.reset()

    def kept(self) -> str:
        return (self.saved or Position(0)).describe(self.steps_per_epoch)

    # --- steps and epochs ---------------------------------------------------------------------
    def start_epoch(self, epoch: int, step: int = 0) -> None:
        self.progress.start_epoch(epoch, step)
        if self.bar is not None:
            last = self.progress.last_val_accuracy
            self.bar.set_description(f"run: epoch {epoch}/{self.epochs}", refresh=False)
            self.bar.set_postfix_str(f"last val acc {last:.4f}" if last is not None else "", refresh=True)

    def evaluating(self, epoch: int) -> None:
        self.progress.write("evaluating", force=True)
        if self.bar is not None:
            self.bar.set_postfix_str(f"evaluating epoch {epoch}", refresh=True)

    def step_done(self, epoch: int, step: int, loss: float) -> None:
        self.scalar("train/step_loss", loss, (epoch - 1) * self.steps_per_epoch + step + 1)
        self.progress.on_step(step + 1)
        if self.bar is not None:
            self.bar.update(1)   # redrawn at most every 0.1 s (tqdm's mininterval), with the run's rate and ETA
        elif self.is_main and time.monotonic() - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = time.monotonic()   # the whole run at a glance: epoch k/n, run ETA
            print(self.progress.line(), file=sys.stderr, flush=True)

    def lr_applied(self, epoch: int, step: int, lr: float) -> None:
        self.scalar("train/lr", lr, (epoch - 1) * self.steps_per_epoch + step + 1)

    def epoch_done(self, row: dict) -> None:
        self.history.append(row)
        self.progress.end_epoch(row["val_accuracy"])
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
    def _show_saved_position(self) -> None:
        """progress.json's epoch and step while stopped: where checkpoint.pt stands."""
        saved = self.saved or Position(0)
        if saved.step:
            self.progress.epoch, self.progress.step = saved.epoch + 1, saved.step
        else:
            self.progress.epoch, self.progress.step = saved.epoch, self.steps_per_epoch if saved.epoch else 0

    def stopped_as_asked(self, epoch: int) -> None:
        self.close()
        if self.is_main:
            message = (f"stopped after epoch {epoch} as asked; continue with: "
                       f"python -m training.train --resume --out {self.run_dir}")
            self._show_saved_position()
            self.progress.write("stopped", message, force=True)
            print(message, flush=True)

    def interrupted(self, stop: StopFlag, signum: int | None = None):
        """Say what was kept and how to resume, then exit with the signal's shell code."""
        during = f"epoch {self.progress.epoch} (step {self.progress.step} of {self.steps_per_epoch})"
        self.close()
        if self.is_main:
            message = interrupted_message(self.run_dir, self.ckpt_path, self.kept(),
                                          within_epoch=bool(self.saved and self.saved.step),
                                          at_once=bool(signum), during=during)
            self._show_saved_position()
            self.progress.write("stopped", message, force=True)
            print(message, file=sys.stderr, flush=True)
        raise SystemExit(exit_code(stop, signum))

    def failed(self, message: str) -> None:
        self.close()
        self.progress.write("failed", message, force=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
