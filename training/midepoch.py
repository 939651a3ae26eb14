"""Stopping within an epoch, and continuing at the same step.

A checkpoint is saved at a step, not only at an epoch's end: when `--checkpoint-every` minutes
have passed since the last one, and when SIGINT/SIGTERM asks the run to stop. One saved within an
epoch also holds its `Position` and the `partial_epoch` (the epoch's running sums, the learning
rate it started with, the loader's place, the ranks: docs/run-directory.md), and `--resume`
restores all of it, so a run stopped and resumed within an epoch equals one run straight through,
bit for bit on the CPU with --deterministic (tests/test_resume.py).

Checkpoints are taken at the engine's sync points only (every step on the CPU, every 50 on an
accelerator), where nothing is in flight on the device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from training import distributed
from training.checkpoint import CheckpointError
from training.engine import EpochTally


def now() -> float:
    """The clock of the checkpoint interval (tests replace it to make every step due)."""
    return time.monotonic()


@dataclass(frozen=True)
class Position:
    """Where a run is: `epoch` epochs finished and `step` optimizer steps of the next one done."""
    epoch: int
    step: int = 0

    def describe(self, steps_per_epoch: int) -> str:
        if self.step:
            return f"epoch {self.epoch + 1}, step {self.step} of {steps_per_epoch}"
        return f"the end of epoch {self.epoch}" if self.epoch else "the start of the run"

    def global_step(self, steps_per_epoch: int) -> int:
        return self.epoch * steps_per_epoch + self.step


class IntervalTimer:
    """Due once `seconds` have passed since the last `reset()` (never when `seconds` is 0)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.reset()

    def reset(self) -> None:
        self.last = now()

    def due(self) -> bool:
        return self.seconds > 0 and now() - self.last >= self.seconds


@dataclass
class PartialEpoch:
    """The epoch in progress when a checkpoint was saved within it."""
    step: int
    tally: EpochTally
    lr: float
    loader: dict

    def state(self, world_size: int) -> dict:
        """As a checkpoint holds it. Under torchrun the sums are every rank's together (a collective
        that all ranks call), so whichever rank resumes them, the epoch's totals come out whole."""
        tally = self.tally.state()
        if world_size > 1:
            device = self.tally.loss_sum.device
            for key in ("loss_sum", "correct"):
                tally[key] = distributed.all_reduce_sum(tally[key].to(device)).cpu()
            tally["seen"] = int(distributed.all_reduce_sum(torch.tensor(tally["seen"], device=device)))
        return {"tally": tally, "lr": self.lr, "loader": self.loader, "world_size": world_size}


def resume_partial(checkpoint: dict, *, device: torch.device, rank: int, world_size: int,
                   path) -> PartialEpoch | None:
    """The epoch a checkpoint stopped within (None when it was saved at an epoch's end)."""
    saved = checkpoint.get("partial_epoch")
    if not saved:
        return None
    step = int(checkpoint["step"])
    epoch = int(checkpoint["epoch"]) + 1
    if saved["world_size"] != world_size:
        raise CheckpointError(f"{path}: was saved within epoch {epoch} (step {step}) by "
                              f"{saved['world_size']} process(es); resume it with the same number (now {world_size})")
    tally = EpochTally.from_state(saved["tally"], device)
    if rank != 0:   # the saved sums are all ranks' together: rank 0 carries them
        tally = EpochTally(torch.zeros_like(tally.loss_sum), torch.zeros_like(tally.correct), 0,
                           tally.seconds, tally.cpu_seconds)
    return PartialEpoch(step=step, tally=tally, lr=float(saved["lr"]), loader=saved["loader"])


class StepCheckpoints:
    """Asked by the engine after each sync point's optimizer step: save a checkpoint here, stop here?

    Under torchrun every rank asks at the same step and all agree (one collective), so they stop
    together and all take part in the checkpoint's sums; rank 0 writes it.
    """

    def __init__(self, log, stop, loader, *, world_size: int, device: torch.device):
        self.log, self.stop, self.loader = log, stop, loader
        self.world_size, self.device = world_size, device
        self.epoch, self.tally, self.lr = 0, None, 0.0

    def begin_epoch(self, epoch: int, tally: EpochTally, lr: float) -> None:
        self.epoch, self.tally, self.lr = epoch, tally, lr

    def stop_requested(self) -> bool:
        return distributed.any_rank_flags([self.stop()], self.device)[0]

    def __call__(self, steps_done: int) -> bool:
        """The engine's `at_sync`: True to stop the epoch here."""
        stop, due = distributed.any_rank_flags([self.stop(), self.log.timer.due()], self.device)
        # At an epoch's last step the epoch-end checkpoint comes next anyway (unless stopping).
        if stop or (due and steps_done < self.log.steps_per_epoch):
            partial = PartialEpoch(steps_done, self.tally, self.lr, self.loader.place()).state(self.world_size)
            position = Position(self.epoch - 1, steps_done)
            self.log.save_checkpoint(position, partial)
            if not stop:
                self.log.say(f"checkpoint saved at {position.describe(self.log.steps_per_epoch)} "
                             f"({self.log.ckpt_path})")
        return stop

