"""Atomic file writes: a file on disk is either the old version or the new one, never half.

Write to a temporary file in the same folder, flush and fsync it, then `os.replace` it over
the target (atomic on POSIX and Windows when both are on the same filesystem).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Callable


class WriteError(OSError):
    """A file could not be written (full disk, read-only folder, a file where a folder should be).

    An OSError naming the target file (not the temporary one) and the system's reason, in one line.
    """

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror})"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it over `path` atomically.

    Any OSError on the way (mkdir, the write itself, fsync, rename) becomes a WriteError
    naming `path`; the previous file, if any, is left as it was.
    """
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created as any new file is (0666 less the umask): the mode the target must end with.
        os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = stat.S_IMODE(tmp_path.stat().st_mode)
    except OSError as e:
        raise WriteError(e.errno, e.strerror or str(e), str(path)) from e
    try:
        write(tmp_path)
        # A writer may recreate the file with other permissions (safetensors' save_file does).
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by an `atomic_write` that was killed (SIGKILL, power loss), in
    `folder` and below it.

    Only files named like ours (`.<name>.<random>.tmp`) are touched. Call it when no other
    process is writing into `folder` (e.g. when a run is resumed). Returns what was removed.
    """
    removed = []
    for p in sorted(Path(folder).rglob(".*.tmp")):
        if p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Strict JSON (RFC 8259): a NaN or an infinity is refused (ValueError naming the file), never written
    as the bare NaN/Infinity that other JSON readers reject."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as e:
        raise ValueError(f"{path}: not written, the data holds a value JSON cannot represent ({e})") from e
    return atomic_write_text(path, text + "\n")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
