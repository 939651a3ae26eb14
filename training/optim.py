"""Optimizer and learning-rate schedule from a recipe's `optimizer` and `schedule` dicts."""
from __future__ import annotations

import math

import torch


def build_optimizer(model: torch.nn.Module, opt: dict, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels on CUDA and on CPU: measured on the 2-core CPU (VGG19-BN, 20M parameters), one
    # SGD step takes 38 ms fused vs 198 ms foreach (Adam 60 vs 239 ms), ~10% of a whole training step.
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": opt.get("weight_decay", 0.0)},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]   # none on BN and biases
    if opt["name"] == "sgd":
        return torch.optim.SGD(groups, lr=opt["lr"], momentum=opt.get("momentum", 0.0),
                               nesterov=opt.get("nesterov", False), **fused)
    if opt["name"] == "adam":
        return torch.optim.Adam(groups, lr=opt["lr"], **fused)
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def build_scheduler(optimizer, sched: dict, *, epochs: int, steps_per_epoch: int):
    """Stepped once per batch."""
    total = epochs * steps_per_epoch
    if sched["name"] == "onecycle":
        pct_start = sched.get("pct_start", 0.25)
        if math.isclose(pct_start * total, 1.0):
            # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step (4 steps
            # at 0.25) raised ZeroDivisionError; half a step more is the nearest schedule it can build.
            pct_start = 1.5 / total
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
            pct_start=pct_start, div_factor=sched.get("div_factor", 25.0),
            final_div_factor=sched.get("final_div_factor", 1e4), anneal_strategy="cos",
            cycle_momentum=False)
    if sched["name"] == "cosine":
        warmup = min(sched.get("warmup_epochs", 0) * steps_per_epoch, max(total - 1, 0))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
        if not warmup:
            return cosine
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
    raise ValueError(f"unknown schedule {sched['name']!r}")
