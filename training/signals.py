"""Ctrl-C and SIGTERM during training: finish the step, save a checkpoint at it, exit 128+N.

A second signal while stopping stops at once (StopNow); the last checkpoint saved stays as it was.
"""
from __future__ import annotations

import signal
import sys


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
