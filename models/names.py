"""Names a user types or reads, each written once: environment variables, the commands that
train each model, and the titles the app and cards show for tasks and variants."""
from __future__ import annotations

from models.variant import BASELINE, RANDOM_ERASING, Variant

HUB_MODELS_ENV = "CNN_STUDIO_HUB_MODELS"   # space- or comma-separated Hub repo ids (user/name[@revision])
RUNS_DIR = "runs"                           # runs/<task>[-re]/<run-name>/

TRAIN_MODULE = "training.train"
TASK_TITLES = {"cifar10": "CIFAR-10", "mnist": "MNIST", "catsdogs": "Cats vs Dogs"}
VARIANT_TITLES = {v: v.title for v in Variant}


def train_command(task: str, variant: str = BASELINE) -> str:
    """The exact command that trains the (task, variant) model (README and app say the same)."""
    flag = " --random-erasing" if Variant(variant) is RANDOM_ERASING else ""
    return f"python -m {TRAIN_MODULE} --task {task}{flag}"
