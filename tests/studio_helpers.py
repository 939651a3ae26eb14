"""Helpers for the studio tests (app reload, Train tab): generated MNIST, the training CLI, a browser."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def write_mnist(root: Path, *, train_images: int = 96, test_images: int = 48, seed: int = 0) -> Path:
    """MNIST in the real idx format (root/MNIST/raw/*-ubyte): tests.datagen's when present."""
    try:
        from tests.datagen import write_mnist as shared
    except ImportError:
        shared = None
    if shared is not None:
        return shared(root, train_images=train_images, test_images=test_images, seed=seed)
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train_images), ("t10k", test_images)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):   # a bar whose position encodes the class, plus noise
            images[i, 4:24, 2 + 2 * label:4 + 2 * label] = 255
            images[i] |= rng.integers(0, 40, (28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x0803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, n) + labels.tobytes())
    return Path(root)


def train_cli(out: Path, data_dir: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m training.train` as a user runs it: a separate process, tiny MNIST run."""
    cmd = [sys.executable, "-m", "training.train", "--task", "mnist", "--data-dir", str(data_dir), "--out", str(out),
           "--epochs", "1", "--limit-train", "64", "--limit-val", "32", "--batch-size", "32", "--device", "cpu",
           "--no-progress", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=True)


def chromium_path() -> str | None:
    return str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
