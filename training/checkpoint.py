"""Resume state: written atomically at each epoch's end and within epochs (training/midepoch.py),
read back with `torch.load(weights_only=True)`.

`checkpoint.pt` holds only tensors and plain containers (no pickled classes), so loading it
can never run code. It is never uploaded; the release weights are model.safetensors.

It carries its own digest: `sha256` is computed over everything else in it (every tensor's
bytes, every number and string, in a fixed order) when it is written, and recomputed when it
is read back, so damage anywhere in the file (a flipped byte inside a tensor, which the zip
container does not check) is refused before it reaches a model or an optimizer.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import random
import re
from pathlib import Path

import numpy as np
import torch

from models.atomic import WriteError, atomic_write
from models.runs import CHECKPOINT_FILE  # the name lives with the run-folder layout (models/runs.py)

# The parts of config.json that must match for a checkpoint to be resumed.
RESUME_KEYS = ("task", "variant", "architecture", "labels", "in_channels", "input_size",
               "recipe", "seed", "limit_train", "limit_val")


REQUIRED_KEYS = ("model", "optimizer", "epoch", "history", "rng", "config")
# 4: the one batch path's place within an epoch (training/data.py Batches). Checkpoints are resume
# state of a run in progress, never released, so earlier formats are refused by name.
CHECKPOINT_FORMAT = 4
DIGEST_KEY = "sha256"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed; the message names the file and the reason."""


def rng_state() -> dict:
    """The process-wide generators: torch (CPU and CUDA), Python's `random`, numpy's legacy global one."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": _numpy_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    _set_numpy_rng_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_rng_state() -> dict:
    # As plain data: a numpy array is not something weights_only loading accepts.
    st = np.random.get_state(legacy=False)
    return {"key": torch.from_numpy(st["state"]["key"].astype(np.int64)), "pos": int(st["state"]["pos"]),
            "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])}


def _set_numpy_rng_state(state: dict) -> None:
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["key"].numpy().astype(np.uint32), "pos": state["pos"]},
                         "has_gauss": state["has_gauss"], "gauss": state["gauss"]})


def state_sha256(state) -> str:
    """SHA-256 of a checkpoint state: tensors (dtype, shape, bytes) and plain data, dict keys sorted."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())   # the buffer itself, no copy
    elif isinstance(value, dict):
        h.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):   # a tuple may come back as a list: the same data
        h.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    else:                                    # str, int, float, bool, None, bytes: repr is exact
        h.update(f"{type(value).__name__}:{value!r};".encode())


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` atomically, after checking that it will load with `weights_only=True`.

    `config` and `history` are stored as plain JSON data (a `torch.__version__` string, for
    instance, is a TorchVersion object that the weights-only unpickler refuses). The temporary
    file is read back weights-only before it replaces the previous checkpoint, so a checkpoint
    that could not be resumed never overwrites one that can.
    """
    state = dict(state)
    for key in ("config", "history"):
        if key in state:
            state[key] = json.loads(json.dumps(state[key], allow_nan=False))
    state["format"] = CHECKPOINT_FORMAT
    state.pop(DIGEST_KEY, None)
    state[DIGEST_KEY] = state_sha256(state)
    # Serialised in memory, written by Python: a full disk is then one OSError naming the file (torch's
    # own writer turns it into a RuntimeError from inline_container.cc, a 40-line traceback).
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        try:
            back = torch.load(tmp, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            raise CheckpointError(f"refusing to write {path}: the state would not load with "
                                  f"weights_only=True ({type(e).__name__}: {_first_line(e)})") from e
        _verify_digest(back, tmp, written=path)

    try:
        atomic_write(path, write)
    except WriteError as e:
        if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise WriteError(e.errno, f"{e.strerror}; it needs {len(data) / 2**20:,.0f} MiB", e.filename) from e
        raise


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
    written_format = state.get("format")
    if written_format != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {written_format!r}, this CNN Studio reads format "
                              f"{CHECKPOINT_FORMAT}; resume it with the version that wrote it")
    _verify_digest(state, path)
    return state


def _verify_digest(state: dict, path: Path, written: Path | None = None) -> None:
    body = {k: v for k, v in state.items() if k != DIGEST_KEY}
    recorded = state.get(DIGEST_KEY)
    if not isinstance(recorded, str) or state_sha256(body) != recorded:
        if written is not None:
            raise CheckpointError(f"refusing to write {written}: what was written reads back different "
                                  f"(sha256 mismatch); the previous checkpoint is kept")
        raise CheckpointError(f"{path}: damaged (its content does not match the sha256 it was written with); "
                              f"refused, nothing was resumed")


def check_resumable(checkpoint: dict, config: dict, path: Path) -> None:
    """Refuse a checkpoint written for another task or recipe, naming what differs."""
    stored = checkpoint.get("config") or {}
    config = json.loads(json.dumps(config, allow_nan=False))   # as the checkpoint stores it (tuples: lists)
    differs = [d for key in RESUME_KEYS for d in _differences(key, stored.get(key), config.get(key))]
    if not differs:
        return
    shown = "; ".join(differs[:4]) + (f"; and {len(differs) - 4} more" if len(differs) > 4 else "")
    raise CheckpointError(f"{path}: was written for a different run ({shown}); resume "
                          f"with the same task and recipe (leave out the flags that differ), or choose a new --out")


def _differences(name: str, stored, given) -> list[str]:
    """'recipe.optimizer.lr: checkpoint 0.001, now 0.5' for each leaf that differs (dicts compared key by key)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        return [d for key in sorted(set(stored) | set(given), key=str)
                for d in _differences(f"{name}.{key}", stored.get(key), given.get(key))]
    if stored == given:
        return []
    return [f"{name}: checkpoint {json.dumps(stored, allow_nan=False)}, now {json.dumps(given, allow_nan=False)}"]
