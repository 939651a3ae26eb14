"""Training jobs started from the app: `python -m training.train ...` as separate processes, one at a time.

The app never imports `training/`: a job is a command line, its progress is what the CLI writes
(progress.json and history.json in the run folder, and its output lines). Jobs run in the order
they were asked for; Stop sends SIGINT (the CLI checkpoints and exits, resumable), Resume queues
`--resume --out RUN` again. A finished job calls `on_finished` (the app reloads its catalog, so the
new model is selectable at once).
"""
from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from models.jsonfile import try_read_json

REPO = Path(__file__).resolve().parents[1]
LOG_LINES = 400                  # output lines kept per job
INTERRUPTED_CODES = {130, 143}   # the CLI's exit status after SIGINT / SIGTERM (128 + signal)

QUEUED, RUNNING, STOPPING, STOPPED, FINISHED, FAILED, CANCELLED = (
    "queued", "running", "stopping", "stopped", "finished", "failed", "cancelled")


@dataclass
class TrainRequest:
    """What the Train tab asks for; None keeps the preset's value."""
    task: str
    random_erasing: bool = False
    preset: str = "full"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    limit_train: int | None = None
    limit_val: int | None = None

    def flags(self) -> list[str]:
        args = ["--task", self.task]
        if self.random_erasing:
            args.append("--random-erasing")
        if self.preset != "full":
            args += ["--preset", self.preset]
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--lr", self.lr),
                            ("--seed", self.seed), ("--limit-train", self.limit_train),
                            ("--limit-val", self.limit_val)):
            if value is not None:
                args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return args


@dataclass
class Job:
    id: int
    request: TrainRequest
    run_dir: Path
    argv: list[str]                     # after `python -m training.train`
    resume: bool = False
    status: str = QUEUED
    returncode: int | None = None
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    started: float | None = None
    ended: float | None = None
    process: subprocess.Popen | None = None

    @property
    def key(self) -> str:
        """The catalog key the finished run will have: `<task folder>/<run folder>`."""
        return f"{self.run_dir.parent.name}/{self.run_dir.name}"

    @property
    def variant(self) -> str:
        return "random-erasing" if self.request.random_erasing else "baseline"

    def command(self, display_root: Path | None = None) -> str:
        """The command line, for copying into a terminal (run folder relative to `display_root`)."""
        argv = list(self.argv)
        if display_root is not None:
            argv = [_relative(a, display_root) for a in argv]
        return shlex.join(["python", "-m", "training.train", *argv])

    def progress(self) -> dict:
        return try_read_json(self.run_dir, "progress.json") or {}

    def history(self) -> list:
        rows = try_read_json(self.run_dir, "history.json")
        return rows if isinstance(rows, list) else []


def _relative(arg: str, root: Path) -> str:
    try:
        return str(Path(arg).relative_to(root)) if os.path.isabs(arg) else arg
    except ValueError:
        return arg


class TrainingJobs:
    """A queue of training jobs run one after another in child processes."""

    def __init__(self, runs_dir: Path, *, data_dir: Path | None = None, device: str = "auto",
                 on_finished: Callable[[Job], None] = lambda job: None, python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.device = device
        self.on_finished = on_finished
        self.python = python
        self.jobs: list[Job] = []
        self.finished_count = 0           # bumps when a job finishes: the UI re-lists models then
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)

    # --- requests -----------------------------------------------------------------------------
    def submit(self, request: TrainRequest) -> Job:
        """Queue a new run; it starts when the jobs before it are done."""
        with self._cond:
            run_dir = self._new_run_dir(request)
            argv = [*request.flags(), *self._common_flags(), "--out", str(run_dir)]
            job = Job(id=len(self.jobs) + 1, request=request, run_dir=run_dir, argv=argv)
            self._enqueue(job)
            return job

    def resume(self, job_id: int | None = None) -> Job:
        """Queue the stopped job `job_id` (default: the latest stopped one) to continue from its checkpoint."""
        with self._cond:
            stopped = [j for j in self.jobs if j.status in (STOPPED, FAILED) and (job_id is None or j.id == job_id)
                       and (j.run_dir / "checkpoint.pt").is_file()]
            if not stopped:
                raise LookupError("no stopped run to resume" if job_id is None else
                                  f"job {job_id} is not a stopped run with a checkpoint")
            old = stopped[-1]
            if any(j.run_dir == old.run_dir and j.status in (QUEUED, RUNNING, STOPPING) for j in self.jobs):
                raise LookupError(f"{old.key} is already queued or running")
            argv = ["--resume", *self._common_flags(), "--out", str(old.run_dir)]
            job = Job(id=len(self.jobs) + 1, request=old.request, run_dir=old.run_dir, argv=argv, resume=True)
            self._enqueue(job)
            return job

    def stop(self, job_id: int | None = None) -> Job:
        """SIGINT to the running job (it checkpoints and exits); a queued job is just taken off the queue."""
        with self._cond:
            candidates = [j for j in self.jobs if j.status in (RUNNING, QUEUED) and (job_id is None or j.id == job_id)]
            running = [j for j in candidates if j.status == RUNNING]
            job = (running or candidates or [None])[0]
            if job is None:
                raise LookupError("nothing is running or queued" if job_id is None else
                                  f"job {job_id} is not running or queued")
            if job.status == QUEUED:
                job.status = CANCELLED
                self._cond.notify_all()
                return job
            job.status = STOPPING
            if job.process is not None and job.process.poll() is None:
                job.process.send_signal(signal.SIGINT)
            return job

    def close(self) -> None:
        """Stop the running job (it checkpoints) and the worker; called at exit."""
        with self._cond:
            self._closed = True
            for job in self.jobs:
                if job.status == QUEUED:
                    job.status = CANCELLED
                if job.process is not None and job.process.poll() is None:
                    job.process.send_signal(signal.SIGINT)
            self._cond.notify_all()
        for job in self.jobs:
            if job.process is not None:
                try:
                    job.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    job.process.kill()

    # --- queries ------------------------------------------------------------------------------
    def current(self) -> Job | None:
        """The running job, else the latest one."""
        with self._cond:
            active = [j for j in self.jobs if j.status in (RUNNING, STOPPING)]
            return active[0] if active else (self.jobs[-1] if self.jobs else None)

    def get(self, job_id: int) -> Job:
        for j in self.jobs:
            if j.id == job_id:
                return j
        raise LookupError(f"no job {job_id}")

    def wait(self, job: Job, statuses: tuple[str, ...], timeout: float) -> bool:
        """Block until `job` has one of `statuses` (for tests and scripts); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while job.status not in statuses:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # --- internals ----------------------------------------------------------------------------
    def _common_flags(self) -> list[str]:
        flags = ["--device", self.device, "--no-progress"]
        if self.data_dir is not None:
            flags[:0] = ["--data-dir", str(self.data_dir)]
        return flags

    def _new_run_dir(self, request: TrainRequest) -> Path:
        folder = self.runs_dir / f"{request.task}{'-re' if request.random_erasing else ''}"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        taken = {j.run_dir for j in self.jobs}
        run_dir, n = folder / stamp, 1
        while run_dir in taken or run_dir.exists():
            n += 1
            run_dir = folder / f"{stamp}-{n}"
        return run_dir

    def _enqueue(self, job: Job) -> None:
        if self._closed:
            raise LookupError("the app is shutting down")
        self.jobs.append(job)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="training-jobs", daemon=True)
            self._worker.start()
        self._cond.notify_all()

    def _next(self) -> Job | None:
        with self._cond:
            while not self._closed:
                job = next((j for j in self.jobs if j.status == QUEUED), None)
                if job is not None:
                    job.status = RUNNING
                    job.started = time.time()
                    return job
                self._cond.wait()
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)

    def _run(self, job: Job) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            process = subprocess.Popen([self.python, "-m", "training.train", *job.argv], cwd=REPO, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                       start_new_session=True)   # a Ctrl-C meant for the app reaches it via close()
        except OSError as e:
            self._finish(job, None, f"could not start: {e}")
            return
        with self._cond:
            job.process = process
            if job.status == STOPPING:            # Stop arrived before the process existed
                process.send_signal(signal.SIGINT)
        for line in process.stdout:
            job.log.append(line.rstrip("\n"))
        self._finish(job, process.wait())

    def _finish(self, job: Job, code: int | None, note: str = "") -> None:
        with self._cond:
            job.returncode, job.ended = code, time.time()
            if note:
                job.log.append(note)
            if code == 0:
                job.status = FINISHED
                self.finished_count += 1
            elif code in INTERRUPTED_CODES or job.status == STOPPING:
                job.status = STOPPED
            else:
                job.status = FAILED
            self._cond.notify_all()
        if job.status == FINISHED:
            try:
                self.on_finished(job)
            except Exception as e:   # the job finished; a failed re-listing must not kill the worker
                job.log.append(f"(the app could not re-list its models: {type(e).__name__}: {e})")
