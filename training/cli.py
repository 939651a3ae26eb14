"""What the command-line entry points share: argument types with ranges, and one-line errors.

`python -m training.train` and `python -m training.evaluate` end in one of three ways: success
(exit 0), a refusal that names the problem in one line on stderr (exit 1; 2 for a bad flag, as
argparse does), or an interruption (exit 128 + signal number). Never a traceback for a
foreseeable failure: bad flags, missing or wrong data folders, unwritable output, full disks,
damaged model or checkpoint files, a diverged run.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable


def _number(kind: type, low: float, bound: str, *, strict: bool = False):
    """An argparse type: a finite `kind` (int or float) of at least `low` (above it when `strict`);
    nan, inf and anything out of range are refused, the message saying `bound`."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return parse


positive_int = _number(int, 1, "at least 1")
nonnegative_int = _number(int, 0, "0 or more")
positive_float = _number(float, 0, "a finite number above 0", strict=True)        # a learning rate
nonnegative_float = _number(float, 0, "a finite number, 0 or more")   # minutes between checkpoints; 0: off


def check_writable_folder(path: str | os.PathLike, flag: str) -> None:
    """Refuse an output folder that cannot be created or written, before any work and leaving nothing.

    Checked by doing: a temporary file is created and removed in the nearest existing folder
    (permission bits say nothing for root, and nothing about read-only mounts).
    """
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())   # "." or "/" at the latest
    if not existing.is_dir():
        raise CliError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise CliError(f"{flag} {path}: cannot create files in {existing} ({e.strerror or e})") from e


class CliError(Exception):
    """A refusal with a one-line message for the user."""


LOCK_FILE = ".training.lock"


@contextlib.contextmanager
def run_folder_lock(folder: Path):
    """Hold an exclusive lock on a run folder while a run writes it: a second run into the same --out
    is refused in one line naming the holder, instead of both finishing "done" over each other's files.

    flock: released by the kernel when the holder dies, so a killed run never leaves a stale lock. A
    folder this call created is removed again if the run left nothing else in it."""
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd, held = os.open(path, os.O_RDWR | os.O_CREAT, 0o644), False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 300).decode("utf-8", "replace").strip() or "another process"
            raise CliError(f"--out {folder}: another training run is writing there ({holder}); wait for it to "
                           f"end, or choose another --out") from None
        held = True
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        yield
    finally:
        if held:   # the lock file is ours to remove; another run's holder is left alone
            path.unlink(missing_ok=True)
        os.close(fd)
        if created and not any(folder.iterdir()):
            folder.rmdir()


def one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and type(e).__str__ is OSError.__str__:
        text = f"{e.filename}: {e.strerror or e}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def run_cli(main: Callable, parser: argparse.ArgumentParser, argv: list[str] | None = None,
            errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parse `argv`, call `main(args)`, and turn the expected failures into one line and an exit code.

    `errors` are the exception types that mean "refused, say why" besides OSError and CliError.
    Anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")   # e.g. files skipped as unreadable
    args = parser.parse_args(argv)
    try:
        main(args)
    except (CliError, OSError, *errors) as e:
        print(f"error: {one_line(e)}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopped at once; files written before are kept as they were", file=sys.stderr,
              flush=True)
        return 128 + 2
    return 0
