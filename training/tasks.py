"""The three tasks and their default recipes: one recipe dict per task, grouped by concern.

Why these recipes:
- cifar10 (VGG19-BN, 40 epochs): SGD with Nesterov momentum and weight decay 5e-4 is the
  standard for VGG on CIFAR; a one-cycle schedule (warm-up over the first quarter, then
  annealing to ~0) reaches in 40 epochs what a step schedule needs ~150 for. Random crop
  with 4 px zero padding and horizontal flip are the classic CIFAR augmentations; label
  smoothing 0.1 adds a few tenths of a percent. The aim is 94% test accuracy.
- mnist (VGG19-BN with one input channel, images resized 28 -> 32): Adam with
  cross-entropy as the original asks; a one-cycle schedule on Adam's step size; random
  crop with 2 px padding (no flip: a flipped digit is another digit or none). The aim is
  99.6% test accuracy.
- catsdogs (ResNet50, 224x224, one logit): SGD with Nesterov momentum and a cosine
  schedule with warm-up; images decoded once to 256 px, random 224 crop + flip for
  training, centre crop for evaluation. `--random-erasing` adds Random Erasing with the
  paper's defaults (Zhong et al. 2017: p=0.5, area 0.02-0.4, aspect 0.3-3.3, random
  values), to training batches only, after normalisation.

Presets (`--preset`): `full` is the recipe above (the default, and what a GPU should run);
`quick` is sized for a CPU and changes only the schedule's length and pace (QUICK_PRESETS).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from models.presets import (CATSDOGS_LABELS, CIFAR10_LABELS, DEFAULT_AUGMENT, DEFAULT_MODEL_CONFIGS,
                            MNIST_LABELS, RANDOM_ERASING_DEFAULTS)
from models.registry import ModelConfig

# Model configs, augmentations and Random Erasing's paper defaults (p=0.5, area 0.02-0.4,
# aspect 0.3-3.3, random fill) live in models/presets.py, so the app can show them without
# importing training/; the recipes below take them from there.
__all__ = ["CATSDOGS_LABELS", "CIFAR10_LABELS", "MNIST_LABELS", "TASKS", "TaskSpec",
           "DatasetInfo", "PRESETS", "QUICK_PRESETS", "get_task", "override_recipe"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str                 # human name, for cards
    hub_id: str | None        # Hugging Face dataset id, for card metadata
    source: str               # how CNN Studio reads it
    train_split: str
    val_split: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    model: ModelConfig
    dataset: DatasetInfo
    stored_size: int          # images are kept on the device at this size (uint8)
    recipe: dict = field(default_factory=dict)

    def resolved_recipe(self, *, random_erasing: bool = False, preset: str = "full", **overrides) -> dict:
        """A deep copy of the preset's recipe with Random Erasing and CLI overrides applied."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        recipe = _merged(self.recipe, QUICK_PRESETS[self.name] if preset == "quick" else {})
        if random_erasing:
            recipe["augment"]["random_erasing"] = dict(RANDOM_ERASING_DEFAULTS)
        return override_recipe(recipe, **overrides)


def override_recipe(recipe: dict, *, epochs: int | None = None, batch_size: int | None = None,
                    lr: float | None = None) -> dict:
    """A copy of `recipe` with the CLI's values where given (None keeps the recipe's)."""
    recipe = copy.deepcopy(recipe)
    if epochs is not None:
        recipe["epochs"] = epochs
    if batch_size is not None:
        recipe["batch_size"] = batch_size
    if lr is not None:
        recipe["optimizer"]["lr"] = lr
    return recipe


def _merged(base: dict, changes: dict) -> dict:
    """A deep copy of `base` with `changes` applied key by key (nested dicts merged)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


PRESETS = ("full", "quick")

# What `--preset quick` changes in each task's recipe: a run a 2-core CPU can afford.
# - mnist: one epoch over all 60,000 images, the one-cycle schedule compressed into it.
#   Measured on a 2-core Xeon (AMX, bf16): see results/mnist/ and the README's timings.
# - cifar10: 5 epochs of the same recipe (not measured here).
# - catsdogs: 3 epochs from torchvision's ImageNet weights (downloaded once, ~100 MB), at a
#   fine-tuning learning rate; from scratch ResNet50 needs far more epochs than a CPU affords
#   (not measured here).
QUICK_PRESETS: dict[str, dict] = {
    "mnist": {"epochs": 1, "schedule": {"pct_start": 0.15}},
    "cifar10": {"epochs": 5},
    "catsdogs": {"epochs": 3, "optimizer": {"lr": 0.01}, "schedule": {"warmup_epochs": 0},
                 "pretrained": "IMAGENET1K_V2"},
}


TASKS: dict[str, TaskSpec] = {
    "cifar10": TaskSpec(
        name="cifar10",
        model=DEFAULT_MODEL_CONFIGS["cifar10"],
        dataset=DatasetInfo(name="CIFAR-10", hub_id="uoft-cs/cifar10",
                            source="torchvision.datasets.CIFAR10", train_split="train", val_split="test"),
        stored_size=32,
        recipe={
            "epochs": 40,
            "batch_size": 256,                         # images per step
            "optimizer": {"name": "sgd", "lr": 0.1,     # peak learning rate
                          "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"name": "onecycle", "pct_start": 0.25,  # fraction of steps warming up
                         "div_factor": 10.0, "final_div_factor": 1000.0},
            "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
            "augment": dict(DEFAULT_AUGMENT["cifar10"]),   # crop 32 after 4 px zero padding, flip
        },
    ),
    "mnist": TaskSpec(
        name="mnist",
        model=DEFAULT_MODEL_CONFIGS["mnist"],
        dataset=DatasetInfo(name="MNIST", hub_id="ylecun/mnist", source="torchvision.datasets.MNIST",
                            train_split="train", val_split="test"),
        stored_size=32,
        recipe={
            "epochs": 40,
            "batch_size": 128,
            "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"name": "onecycle", "pct_start": 0.2, "div_factor": 10.0, "final_div_factor": 1000.0},
            "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
            "augment": dict(DEFAULT_AUGMENT["mnist"]),     # crop 32 after 2 px padding, no flip
        },
    ),
    "catsdogs": TaskSpec(
        name="catsdogs",
        model=DEFAULT_MODEL_CONFIGS["catsdogs"],
        dataset=DatasetInfo(name="Oxford-IIIT Pet (cat vs dog)", hub_id="timm/oxford-iiit-pet",
                            source="torchvision.datasets.OxfordIIITPet(target_types='binary-category')",
                            train_split="trainval", val_split="test"),
        stored_size=256,
        recipe={
            "epochs": 40,
            "batch_size": 64,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
            "schedule": {"name": "cosine", "warmup_epochs": 2},
            "loss": {"name": "bce_with_logits"},
            "augment": dict(DEFAULT_AUGMENT["catsdogs"]),  # random 224 crop of the 256 px image, flip
            "pretrained": None,                         # or "IMAGENET1K_V2" (torchvision weights)
        },
    ),
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None
