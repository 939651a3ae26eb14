"""Resume state: written atomically each epoch, read back with `torch.load(weights_only=True)`.

`checkpoint.pt` holds only tensors and plain containers (no pickled classes), so loading it
can never run code. It is never uploaded; the release weights are model.safetensors.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import torch

from models.atomic import atomic_write
from models.runs import CHECKPOINT_FILE  # the name lives with the run-folder layout (models/runs.py)

# The parts of config.json that must match for a checkpoint to be resumed.
RESUME_KEYS = ("task", "variant", "architecture", "num_classes", "in_channels", "input_size",
               "recipe", "seed", "limit_train", "limit_val")


REQUIRED_KEYS = ("model", "optimizer", "epoch", "history", "rng", "config", "config_hash")
CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed; the message names the file and the reason."""


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
    """Write `state` atomically, after checking that it will load with `weights_only=True`.

    `config` and `history` are stored as plain JSON data (a `torch.__version__` string, for
    instance, is a TorchVersion object that the weights-only unpickler refuses). Derived
    facts are added for the record: the best validation accuracy so far (the release weights
    are the final epoch's; no best-epoch copy is kept) and the data-order state, which is
    fully determined by (seed, epoch) in `training.data.DeviceLoader`. The temporary file is
    read back weights-only before it replaces the previous checkpoint, so a checkpoint that
    could not be resumed never overwrites one that can.
    """
    state = dict(state)
    for key in ("config", "history"):
        if key in state:
            state[key] = json.loads(json.dumps(state[key]))
    history = state.get("history") or []
    scored = [row for row in history if isinstance(row.get("val_accuracy"), (int, float))]
    if scored:
        best = max(scored, key=lambda row: row["val_accuracy"])
        state.setdefault("best", {"metric": "val_accuracy", "value": best["val_accuracy"],
                                  "epoch": best["epoch"]})
    if "config" in state:
        state.setdefault("data_order", {"seed": state["config"].get("seed"), "next_epoch": state.get("epoch", 0) + 1,
                                        "rule": "DeviceLoader: order and augmentation depend on (seed, epoch) only"})
    state.setdefault("format", CHECKPOINT_FORMAT)

    def write(tmp: Path) -> None:
        torch.save(state, tmp)
        try:
            torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            raise CheckpointError(f"refusing to write {path}: the state would not load with "
                                  f"weights_only=True ({type(e).__name__}: {_first_line(e)})") from e

    atomic_write(path, write)


def _load_error_reason(e: BaseException) -> str:
    """The useful part of torch.load's weights-only refusal (its first lines suggest weights_only=False)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it references {found.group(1)}; a checkpoint holds only tensors and plain data"
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if found:
        return f"not tensors and plain data: {found.group(1).strip()}"
    return f"{type(e).__name__}: {_first_line(e)}"


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()   # torch's messages carry ANSI bold
    return text.splitlines()[0] if text else ""


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: not a loadable checkpoint, refused (the file is empty)")
    try:
        # weights_only=True: tensors and plain containers only; a pickle that names any other
        # callable (os.system, a class's __reduce__, ...) is refused before anything runs.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not usable"
        raise CheckpointError(f"{path}: not a loadable checkpoint, refused ({_load_error_reason(e)})") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a CNN Studio checkpoint (missing {', '.join(missing)})")
    return state


def check_resumable(checkpoint: dict, config: dict, path: Path) -> None:
    """Refuse a checkpoint written for another task or recipe, naming what differs."""
    stored = checkpoint.get("config") or {}
    if checkpoint.get("config_hash") == config_hash(config):
        return
    differs = [k for k in RESUME_KEYS if stored.get(k) != config.get(k)]
    raise CheckpointError(f"{path}: was written for a different run ({', '.join(differs) or 'config'} "
                          f"differ); resume with the same task and recipe, or choose a new --out")
