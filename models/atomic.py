"""Atomic file writes: a file on disk is either the old version or the new one, never half.

Write to a temporary file in the same folder, flush and fsync it, then `os.replace` it over
the target (atomic on POSIX and Windows when both are on the same filesystem).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it over `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp makes 0600, and a writer may recreate the file (safetensors' save_file does):
        # set the usual permissions on what was written, just before it takes the target's name.
        os.chmod(tmp_path, 0o666 & ~_umask())
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete temporary files left by an `atomic_write` that was killed (SIGKILL, power loss).

    Only files named like ours (`.<name>.<random>.tmp`) are touched. Call it when no other
    process is writing into `folder` (e.g. when a run is resumed). Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")
    removed = []
    for p in sorted(found):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)   # no other way to read it: set and restore at once
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
