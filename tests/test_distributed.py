"""The training CLI under torchrun: 2 processes with Gloo on CPU, on generated MNIST idx files.

A two-rank run, stopped within an epoch and resumed, is tested in tests/test_resume.py (its run
folder, reduced metrics and validation images too)."""
from __future__ import annotations

import os
import subprocess
import sys


from tests.conftest import REPO

def torchrun(data_dir, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train", "--task", "mnist", "--data-dir", str(data_dir), "--device", "cpu",
           "--limit-train", "64", "--limit-val", "32", "--batch-size", "16", "--no-progress", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    # A bad data dir (a file: refused without reaching for the network) makes every rank fail while
    # loading; torchrun must exit non-zero promptly, with the ranks' one-line error.
    (tmp_path / "not-a-folder").write_text("x")
    result = torchrun(tmp_path / "not-a-folder", "--out", str(tmp_path / "x"), "--epochs", "1", timeout=240)
    assert result.returncode != 0
    assert f"error: --data-dir {tmp_path / 'not-a-folder'}: is a file, not a folder" in result.stderr
    assert not (tmp_path / "x").exists()
