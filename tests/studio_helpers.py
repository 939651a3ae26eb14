"""Helpers for the studio tests (app reload, Train tab): the training CLI as a process, the browser."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def train_cli(out: Path, data_dir: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m training.train` as a user runs it: a separate process, tiny MNIST run."""
    cmd = [sys.executable, "-m", "training.train", "--task", "mnist", "--data-dir", str(data_dir), "--out", str(out),
           "--epochs", "1", "--limit-train", "64", "--limit-val", "32", "--batch-size", "32", "--device", "cpu",
           "--no-progress", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=True)


def chromium_path() -> str | None:
    return str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
