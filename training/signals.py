"""Ctrl-C and SIGTERM during training: finish the step, keep the last checkpoint, exit 128+N.

A second signal while stopping stops at once (StopNow); what was saved stays as it was.
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
        print(f"\n{signal.Signals(signum).name} received: stopping after this step; the epoch in progress is "
              f"discarded, the checkpoint of the last finished epoch is kept (again to stop at once)",
              file=sys.stderr, flush=True)

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


def interrupted_message(run_dir: Path, epoch: int, *, at_once: bool) -> str:
    """What a stop during `epoch` kept, and the command that continues the run."""
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else \
        "the checkpoint of the initial state (before epoch 1) is kept"
    return (f"interrupted: {'stopped at once' if at_once else 'stopped'} during epoch {epoch}, which is "
            f"discarded; {kept}. Resume with: python -m training.train --resume --out {run_dir}")


def exit_code(stop: StopFlag, signum: int | None = None) -> int:
    """The shell's code for the signal that stopped the run (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (signum or stop.signal or signal.SIGINT)
