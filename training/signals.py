"""Ctrl-C and SIGTERM during training: finish the step, keep the last checkpoint, exit 128+N."""
from __future__ import annotations

import signal
import sys
from pathlib import Path


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:          # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step, then saving", file=sys.stderr)

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


def exit_interrupted(stop: StopFlag, run_dir: Path, epoch: int):
    """Say how to resume, then exit with the shell's code for the signal (130 for Ctrl-C)."""
    code = 128 + (stop.signal or signal.SIGINT)
    print(f"interrupted during epoch {epoch}; the checkpoint of the last finished epoch is saved. "
          f"Resume with: python -m training.train --resume --out {run_dir}", file=sys.stderr, flush=True)
    raise SystemExit(code)
