"""Reading the files of a run directory or Hub repo (config, history, metrics, ...).

`run_file` is the one way to a file of such a folder: it follows no link out of it. Writing is
`models.atomic.atomic_write_json`. Two JSON readers, for the two kinds of caller: the card and
the artifact need a broken file named (`read_json`); the app shows an optional file or nothing
(`try_read_json`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def run_file(root: str | os.PathLike, name: str) -> Path | None:
    """`root/name` when it is a regular file whose real path stays inside the folder `root`, else None.

    In a Hub cache snapshot (`models--<user>--<name>/snapshots/<commit>/`) every file is a link
    into that repo's own `blobs/` folder, which is allowed; a link anywhere else is refused."""
    path = Path(root) / name
    try:
        real, base = path.resolve(strict=True), Path(root).resolve(strict=True)
    except (OSError, RuntimeError):     # missing, a link loop
        return None
    repo = base.parent.parent
    inside = real.is_relative_to(base) or (
        base.parent.name == "snapshots" and repo.name.startswith("models--") and real.parent == repo / "blobs")
    return path if inside and real.is_file() else None


class JSONFileError(ValueError):
    """A file that exists but is not readable JSON; the message names the file."""


def read_json(path: str | os.PathLike, default=None):
    """The JSON value in `path`, or `default` when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:   # RecursionError: deep nesting
        raise JSONFileError(f"{path}: not valid JSON ({e})") from e


def try_read_json(root: str | os.PathLike | None, name: str):
    """`root/name` as JSON, or None when there is no root, no file, or no valid JSON in it."""
    path = run_file(root, name) if root is not None else None
    try:
        return read_json(path) if path is not None else None
    except JSONFileError:
        return None
