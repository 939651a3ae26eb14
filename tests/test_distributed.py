"""The training CLI under torchrun: 2 processes with Gloo on CPU, on generated MNIST idx files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_training import check_run_directory

def torchrun(data_dir, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--task", "mnist", "--data-dir", str(data_dir), "--device", "cpu",
           "--limit-train", "64", "--limit-val", "32", "--batch-size", "16", "--no-progress", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_process_run_resumes_and_covers_the_whole_validation_subset(tmp_path, mnist_run, mnist_dir):
    out = tmp_path / "mnist-ddp"
    first = torchrun(mnist_dir, "--out", str(out), "--epochs", "2", "--stop-after", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "stopped after epoch 1" in first.stdout
    assert len(json.loads((out / "history.json").read_text())) == 1

    second = torchrun(mnist_dir, "--out", str(out), "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stdout
    # Only rank 0 prints the summary and writes files: one line per epoch, one run directory.
    assert second.stdout.count("epoch 2/2") == 1
    config, history, metrics, _ = check_run_directory(out, task="mnist", epochs=2, val_images=32, train_images=64)
    assert [row["epoch"] for row in history] == [1, 2]
    assert config["distributed"]["world_size"] == 2
    assert config["distributed"]["effective_batch_size"] == 32
    # Metrics are reduced across ranks: the whole subset, not rank 0's half.
    assert metrics["num_images"] == 32
    single = json.loads((mnist_run / "predictions.json").read_text())
    both = json.loads((out / "predictions.json").read_text())
    assert both["indices"] == single["indices"]          # the same images as a single-process run
    assert both["labels"] == single["labels"]
    assert sum(map(sum, metrics["confusion_matrix"])) == 32


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    # A bad data dir (a file: refused without reaching for the network) makes every rank fail while
    # loading; torchrun must exit non-zero promptly, with the ranks' one-line error.
    (tmp_path / "not-a-folder").write_text("x")
    result = torchrun(tmp_path / "not-a-folder", "--out", str(tmp_path / "x"), "--epochs", "1", timeout=240)
    assert result.returncode != 0
    assert f"error: --data-dir {tmp_path / 'not-a-folder'}: is a file, not a folder" in result.stderr
    assert not (tmp_path / "x").exists()
