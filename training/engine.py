"""One epoch of training and one evaluation pass, returning plain metric dicts."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from models.predict import logits_to_probs
from models.registry import ModelConfig
from training.distributed import all_reduce_sum, gather_cat


class NonFiniteLossError(RuntimeError):
    pass


def make_loss(recipe_loss: dict, cfg: ModelConfig) -> nn.Module:
    if cfg.binary:
        if recipe_loss["name"] != "bce_with_logits":
            raise ValueError("a binary (one-logit) model trains with bce_with_logits")
        return nn.BCEWithLogitsLoss()
    return nn.CrossEntropyLoss(label_smoothing=recipe_loss.get("label_smoothing", 0.0))


def compute_loss(loss_fn: nn.Module, logits: torch.Tensor, labels: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    if cfg.binary:
        return loss_fn(logits.float().squeeze(1), labels.float())
    return loss_fn(logits.float(), labels)


@dataclass
class EpochTally:
    """The running sums of an epoch's training steps. A checkpoint within an epoch saves them, so
    an epoch stopped and resumed reports the same loss and accuracy as one run straight through."""
    loss_sum: torch.Tensor       # sum of (step loss x images in the step), float32, on the device
    correct: torch.Tensor        # int64, on the device
    seen: int = 0                # images trained on
    seconds: float = 0.0         # wall seconds spent in this epoch's steps (all invocations)
    cpu_seconds: float = 0.0     # CPU seconds of the process(es), likewise

    @classmethod
    def zero(cls, device: torch.device) -> "EpochTally":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def start_clock(self) -> None:
        """From now on `tick()` adds this invocation's wall and CPU seconds to the ones saved before."""
        # CPU seconds of this process (all threads): a cost that does not depend on the machine's load.
        self._clock = (self.seconds, self.cpu_seconds, time.perf_counter(), time.process_time())

    def tick(self) -> None:
        seconds, cpu_seconds, wall_start, cpu_start = self._clock
        self.seconds = seconds + time.perf_counter() - wall_start
        self.cpu_seconds = cpu_seconds + time.process_time() - cpu_start

    def add(self, loss: torch.Tensor, correct: torch.Tensor, images: int) -> None:
        """One step's mean loss, correct predictions and images (on the device: no sync)."""
        self.seen += images
        self.loss_sum += loss * images
        self.correct += correct
        self.tick()

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum.detach().cpu().clone(), "correct": self.correct.detach().cpu().clone(),
                "seen": self.seen, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> "EpochTally":
        return cls(state["loss_sum"].to(device), state["correct"].to(device), int(state["seen"]),
                   float(state["seconds"]), float(state["cpu_seconds"]))

    def postfix(self) -> dict:
        """What the epoch's progress bar shows."""
        return {"loss": f"{float(self.loss_sum) / max(self.seen, 1):.4f}",
                "acc": f"{float(self.correct) / max(self.seen, 1):.4f}",
                "img_s": f"{self.seen / max(self.seconds, 1e-9):.0f}"}

    def totals(self, device: torch.device) -> dict:
        """loss, accuracy, images, seconds, cpu_seconds, images_per_s of the epoch; under torchrun
        over all ranks (a collective), so the numbers describe the whole epoch."""
        summed = all_reduce_sum(torch.stack([self.loss_sum.float(), self.correct.float(),
                                             torch.tensor(float(self.seen), device=device)]))
        loss_total, correct_total, seen_total = (float(v) for v in summed)
        return {"loss": loss_total / max(seen_total, 1), "accuracy": correct_total / max(seen_total, 1),
                "images": int(seen_total), "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
                "images_per_s": seen_total / max(self.seconds, 1e-9)}


def report_losses(pending: list[tuple[torch.Tensor, float]], last_step: int, epoch: int,
                  on_step: Callable[[int, float, float], None] | None) -> None:
    """Read the (step loss, lr its step applied) pairs up to `last_step` back from the device in one
    sync, check each loss for NaN/inf, report it (`on_step(step, loss, lr)`) and empty `pending`."""
    values = torch.stack([loss for loss, _ in pending]).tolist() if pending else []
    for step, value, (_, lr) in zip(range(last_step - len(pending) + 1, last_step + 1), values, pending):
        if not math.isfinite(value):
            raise NonFiniteLossError(f"non-finite loss at epoch {epoch} step {step}")
        if on_step is not None:
            on_step(step, value, lr)
    pending.clear()


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, scheduler, loss_fn: nn.Module,
                    cfg: ModelConfig, *, device: torch.device, epoch: int, autocast_dtype=None,
                    channels_last: bool = False, on_step: Callable[[int, float, float], None] | None = None,
                    at_sync: Callable[[int], bool] = lambda steps_done: False, progress: bool = True,
                    tally: EpochTally | None = None, start_step: int = 0, epochs: int | None = None) -> dict:
    """Train for one pass over `loader`; returns loss, accuracy, images, seconds, images_per_s.

    `on_step(step, loss, lr)` gets each step's loss and the learning rate its optimizer step applied.
    Raises NonFiniteLossError naming the first step with a NaN/inf loss; the caller saves nothing
    after it. `at_sync(steps_done)` is asked after the optimizer step at each sync point (where the
    caller may save a checkpoint); when it answers True the epoch stops there (`interrupted=True`).
    A resumed epoch passes the `tally` saved with its checkpoint and the `start_step` it had
    reached; `loader` then yields only the batches still to come. On the CPU every step is a sync
    point; on an accelerator, reading a value back waits for the device, so step losses are read
    in groups of `sync_every` steps, and `at_sync` is asked at the same points.
    """
    model.train()
    tally = tally if tally is not None else EpochTally.zero(device)
    tally.start_clock()
    bar = tqdm(total=len(loader), initial=start_step, desc=f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}",
               leave=False, disable=not progress, unit="batch")
    interrupted, losses = False, []   # step losses not read back yet, each with its lr
    sync_every, last, step = (1 if device.type == "cpu" else 50), len(loader) - 1, start_step - 1
    try:
        for step, (x, y, _) in enumerate(loader, start=start_step):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(x)
            loss = compute_loss(loss_fn, logits, y, cfg)
            losses.append((loss.detach().float(), optimizer.param_groups[0]["lr"]))   # the lr optimizer.step applies
            sync_point = (step + 1) % sync_every == 0 or step == last
            if sync_point:
                report_losses(losses, step, epoch, on_step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            tally.add(loss.detach(), (logits_to_probs(logits.detach(), cfg).argmax(dim=1) == y).sum(), y.shape[0])
            if progress and sync_point:   # tqdm redraws at most every `mininterval` (0.1 s)
                bar.set_postfix(tally.postfix(), refresh=False)
            bar.update(1)
            if sync_point and at_sync(step + 1):
                interrupted = True
                break
        report_losses(losses, step, epoch, on_step)   # a loader that ended early (batches of unreadable files left out)
    finally:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tally.tick()
    return {**tally.totals(device), "steps": step + 1, "interrupted": interrupted}


@torch.inference_mode()
def evaluate(model: nn.Module, loader, loss_fn: nn.Module, cfg: ModelConfig, *, device: torch.device,
             channels_last: bool = False) -> dict:
    """Loss, accuracy, per-class accuracy, confusion matrix and per-image predictions, in float32
    (the released weights are evaluated as the app and training.evaluate run them)."""
    model.eval()
    k = cfg.num_classes
    confusion = torch.zeros(k, k, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    all_probs, all_idx = [], []
    for x, y, idx in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss_sum += compute_loss(loss_fn, logits, y, cfg).double() * y.shape[0]
        probs = logits_to_probs(logits, cfg)
        pred = probs.argmax(dim=1)
        confusion += torch.bincount(y * k + pred, minlength=k * k).view(k, k)
        seen += y.shape[0]
        all_probs.append(probs.cpu())
        all_idx.append(idx.cpu())
    # Under torchrun each rank saw its own shard: add them up, and gather the per-image rows.
    confusion = all_reduce_sum(confusion).cpu()
    loss_sum = all_reduce_sum(loss_sum)
    seen = int(confusion.sum())
    per_class_total = confusion.sum(dim=1)
    per_class = {label: (float(confusion[i, i]) / float(per_class_total[i]) if per_class_total[i] else None)
                 for i, label in enumerate(cfg.labels)}
    probs = gather_cat(torch.cat(all_probs) if all_probs else torch.zeros(0, k))
    positions = gather_cat(torch.cat(all_idx) if all_idx else torch.zeros(0, dtype=torch.long))
    order = positions.argsort()
    return {
        "loss": float(loss_sum) / max(seen, 1),
        "accuracy": float(confusion.diag().sum()) / max(seen, 1),
        "num_images": seen,
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "probabilities": probs[order],
        "positions": positions[order],
    }
