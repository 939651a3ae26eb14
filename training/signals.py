"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint at it, exit 128+N.

A second signal while stopping stops at once (StopNow); the last checkpoint saved stays as it was.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while stopping: stop at once (what was saved stays as it was)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:          # a second Ctrl-C: stop now
            raise StopNow(signum)
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step and saving a checkpoint at it "
              f"(again to stop at once, keeping the last checkpoint saved)", file=sys.stderr, flush=True)

    def install(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:               # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def restore(self):
        for s, h in self._previous.items():
            signal.signal(s, h)


def interrupted_message(run_dir: Path, checkpoint: Path, kept: str, *, within_epoch: bool,
                        at_once: bool = False, during: str = "") -> str:
    """What a stop kept, and the command that continues the run.

    `kept` says where the checkpoint on disk stands ("epoch 2, step 117 of 468", "the end of
    epoch 1"); `during` says what a stop at once interrupted.
    """
    resume = f"resume with: python -m training.train --resume --out {run_dir}"
    if at_once:
        return (f"stopped at once{f' during {during}' if during else ''}; the last checkpoint saved is kept: "
                f"{kept} ({checkpoint}); {resume}")
    return f"stopped at {kept}; checkpoint saved {'at that step' if within_epoch else 'there'} ({checkpoint}); {resume}"


def exit_code(stop: StopFlag, signum: int | None = None) -> int:
    """The shell's code for the signal that stopped the run (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (signum or stop.signal or signal.SIGINT)
