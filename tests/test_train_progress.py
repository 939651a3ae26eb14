"""What the training CLI tells the terminal: one opening line saying what it is about to do,
and a progress bar for the whole run (epoch k/n, steps, rate, the run's ETA) above the epoch's
own bar, redrawn by tqdm as steps finish (tests/test_resume.py covers the stop messages)."""
from __future__ import annotations

import re


def test_the_cli_opens_with_what_it_will_do_and_shows_the_whole_run(tmp_path, mnist_dir, capsys):
    from training.train import get_args_parser, main
    out = tmp_path / "run"
    main(get_args_parser().parse_args([
        "--task", "mnist", "--data-dir", str(mnist_dir), "--out", str(out), "--epochs", "2", "--limit-train", "32",
        "--limit-val", "16", "--batch-size", "16", "--device", "cpu", "--precision", "fp32"]))
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == (f"training mnist (baseline, preset full) in {out}: device cpu, precision fp32, "
                        f"2 epochs of 32 images (2 steps of 16)")
    assert [line.split()[:2] for line in lines[1:3]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    bars = re.split(r"[\r\n]", captured.err)
    # The whole run: 4 steps in all; each epoch announces itself with the last validation accuracy.
    assert any(re.match(r"run: epoch 1/2: +0%\|.*\| 0/4 \[", bar) for bar in bars), bars
    assert any(re.match(r"run: epoch 2/2: +50%\|.*\| 2/4 \[.*, last val acc 0\.\d{4}\]", bar) for bar in bars), bars
    # The last drawing: all steps done, the remaining time (after "<") down to zero.
    assert any(re.match(r"run: epoch 2/2: 100%\|.*\| 4/4 \[[\d:]+<00:00", bar) for bar in bars), bars
    # The epoch's own bar names the epoch out of the run's.
    assert any(re.match(r"epoch 2/2: +\d+%\|.*\| [0-2]/2 \[", bar) for bar in bars), bars
