"""What a run measured about itself, kept apart from what it was asked to do (RunConfig):
dataset counts, the initial weights' digest, parameter count, the actual device and the
hardware behind it (CPU model, cores, bf16 instructions, GPU), the distributed launch, versions
and the creation time.

config.json holds both, in the flat layout readers and Hub users know (docs/run-directory.md):
`config_json` is the only place that merges them.
"""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision

import models
from training.data import Split
from training.precision import cpu_bf16_instructions
from training.run_config import RunConfig


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cnn_studio": models.__version__}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(device: torch.device) -> dict:
    """The machine a run's timings come from: the CPU's model and usable cores, its bf16 instructions
    (AMX or AVX512-BF16: bf16 autocast by default), torch's threads, and the GPU if one is used."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cpu_cores": cores, "bf16_instructions": cpu_bf16_instructions(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def distributed_facts(cfg: RunConfig, world_size: int) -> dict:
    batch_size = cfg.recipe["batch_size"]
    lr_factor = world_size if cfg.lr_scaling == "linear" else 1
    return {"world_size": world_size, "per_rank_batch_size": batch_size,
            "effective_batch_size": batch_size * world_size, "lr_scaling": cfg.lr_scaling,
            "effective_lr": cfg.recipe["optimizer"]["lr"] * lr_factor, "sync_bn": cfg.sync_bn}


def config_json(cfg: RunConfig, train: Split, val: Split, *, init_sha256: str, parameters: int,
                device: torch.device, world_size: int, created: str) -> dict:
    """config.json: the run's settings and what it measured (docs/run-directory.md). `init_sha256`:
    the initial weights (same seed: same digest, whatever the variant); `created`: ISO 8601, UTC,
    kept from the first invocation on resume; `device`: the device trained on (cuda:1 under
    torchrun); the hardware is this invocation's machine, where history.json's timings come from."""
    config = cfg.settings()
    labels = cfg.source.labels
    counts = {name: dict(zip(labels, split.labels.bincount(minlength=len(labels)).tolist()))
              for name, split in (("train", train), ("val", val))}
    config["dataset"] = {**config["dataset"], "train_images": len(train), "val_images": len(val),
                         "skipped_unreadable": train.skipped + val.skipped,   # files left out: not images
                         "class_counts": counts}
    config.update(init_sha256=init_sha256, parameters=parameters, distributed=distributed_facts(cfg, world_size),
                  created=created, device=str(device), versions=versions(), hardware=hardware(device))
    return config
