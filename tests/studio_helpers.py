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


def untrained_run(run: Path, cfg, task: str, variant: str = "baseline", **config) -> Path:
    """A run folder as training leaves it (weights, config.json, metrics.json, SHA256SUMS) for a freshly
    initialised model of `cfg` (a models.registry.ModelConfig): what the app reads, nothing trained."""
    import json

    from models.artifact import save_release
    from models.registry import create_model
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "split": "val", "num_images": 8}))
    save_release(run, create_model(cfg).eval(), {**cfg.to_dict(), "task": task, "variant": variant,
                                                 "run_name": run.name, "created": "2026-01-01T00:00:00+00:00",
                                                 **config})
    return run
