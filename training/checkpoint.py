"""Resume state: written atomically each epoch, read back with `torch.load(weights_only=True)`.

`checkpoint.pt` holds only tensors and plain containers (no pickled classes), so loading it
can never run code. It is never uploaded; the release weights are model.safetensors.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch

from models.atomic import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"
# The parts of config.json that must match for a checkpoint to be resumed.
RESUME_KEYS = ("task", "variant", "architecture", "num_classes", "in_channels", "input_size",
               "recipe", "seed", "limit_train", "limit_val")


class CheckpointError(RuntimeError):
    pass


def config_hash(config: dict) -> str:
    facts = {k: config.get(k) for k in RESUME_KEYS}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(v):
    return tuple(_as_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda p: torch.save(state, p))


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not usable"
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e


def check_resumable(checkpoint: dict, config: dict, path: Path) -> None:
    """Refuse a checkpoint written for another task or recipe, naming what differs."""
    stored = checkpoint.get("config") or {}
    if checkpoint.get("config_hash") == config_hash(config):
        return
    differs = [k for k in RESUME_KEYS if stored.get(k) != config.get(k)]
    raise CheckpointError(f"{path}: was written for a different run ({', '.join(differs) or 'config'} "
                          f"differ); resume with the same task and recipe, or choose a new --out")
