"""A diverged run stops: non-finite weights, evaluation loss or metrics end it before anything is saved.

The training loss is watched step by step (training.engine.NonFiniteLossError). That is not
enough: with a huge learning rate the loss can stay finite while BatchNorm statistics or weights
overflow, and the evaluation then yields NaN. After each epoch's evaluation, and before that
epoch's checkpoint, history row or any release file is written, `check_epoch` looks at all
three; the checkpoint on disk is then still the last good one.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class DivergedError(RuntimeError):
    """The run produced non-finite numbers; the message names the epoch and what was not finite."""


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers holding NaN or infinity."""
    return [name for name, t in model.state_dict().items()
            if t.is_floating_point() and not torch.isfinite(t).all()]


def non_finite_metrics(ev: dict) -> list[str]:
    """Which evaluation results are NaN or infinite: loss, accuracy, per-class accuracy, probabilities."""
    bad = [key for key in ("loss", "accuracy") if not _finite(ev.get(key))]
    bad += [f"per_class_accuracy[{label}]" for label, value in (ev.get("per_class_accuracy") or {}).items()
            if value is not None and not _finite(value)]
    probs = ev.get("probabilities")
    if isinstance(probs, torch.Tensor) and probs.is_floating_point() and not torch.isfinite(probs).all():
        bad.append("probabilities")
    return bad


def check_epoch(epoch: int, model: nn.Module, ev: dict) -> None:
    """Raise DivergedError when the weights or this epoch's evaluation are not finite."""
    problems = []
    tensors = non_finite_tensors(model)
    if tensors:
        shown = ", ".join(tensors[:3]) + (f" and {len(tensors) - 3} more" if len(tensors) > 3 else "")
        problems.append(f"weights ({shown})")
    metrics = non_finite_metrics(ev)
    if metrics:
        problems.append(f"evaluation {', '.join(metrics[:4])}" + (" ..." if len(metrics) > 4 else ""))
    if problems:
        raise DivergedError(f"the run diverged at epoch {epoch}: non-finite {'; '.join(problems)}")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
