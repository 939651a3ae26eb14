"""Reading the JSON files of a run directory or Hub repo (config, history, metrics, ...).

Writing is `models.atomic.atomic_write_json`. Two readers, for the two kinds of caller:
the card and the artifact need a broken file named (`read_json`); the app shows an optional
file or nothing (`try_read_json`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class JSONFileError(ValueError):
    """A file that exists but is not readable JSON; the message names the file."""


def read_json(path: str | os.PathLike, default=None):
    """The JSON value in `path`, or `default` when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise JSONFileError(f"{path}: not valid JSON ({e})") from e


def try_read_json(root: str | os.PathLike | None, name: str):
    """`root/name` as JSON, or None when there is no root, no file, or no valid JSON in it."""
    if root is None:
        return None
    try:
        return read_json(Path(root) / name)
    except JSONFileError:
        return None
