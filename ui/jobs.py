"""Training jobs started from the app: `python -m training.train ...` as separate processes, one at a time.

The app never imports `training/`: a job is a command line, its progress what the CLI writes (progress.json,
history.json, its output). Jobs run in order, at most MAX_WAITING waiting; Stop sends SIGINT (the CLI
checkpoints), Resume queues `--resume --out RUN`. Only the session that asked for a job (a page, a
gradio_client Client) may stop or resume it. A finished job calls `on_finished` (the app re-lists its models).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from models.jsonfile import try_read_json
from ui.catalog import public_text
from ui.upload import ID

REPO = Path(__file__).resolve().parents[1]
LOG_LINES = 400                  # output lines kept per job
INTERRUPTED_CODES = {130, 143}   # the CLI's exit status after SIGINT / SIGTERM (128 + signal)
# What this machine takes: the full recipes run 40 epochs in batches of 64-256.
MAX_EPOCHS = 100
MAX_BATCH = 1024 if torch.cuda.is_available() else 256
MAX_WAITING = 3                  # queued jobs, all sessions together

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
    arch: str | None = None         # another architecture the task offers
    dataset: str | None = None      # an uploaded zip's id (ui/upload.py), for --task folder

    def flags(self) -> list[str]:
        args = ["--task", self.task] + (["--arch", self.arch] if self.arch else [])
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
    argv: list[str]                     # the whole command line
    owner: str | None = None            # the session that asked for it (None: in-process callers)
    resume: bool = False
    status: str = QUEUED
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    ended: float | None = None
    process: subprocess.Popen | None = None
    final: dict | None = None           # progress.json when it ended (a resume writes the same file later)

    @property
    def key(self) -> str:
        """The catalog key the finished run will have: `<task folder>/<run folder>`."""
        return f"{self.run_dir.parent.name}/{self.run_dir.name}"

    def progress(self) -> dict:
        return self.final if self.final is not None else try_read_json(self.run_dir, "progress.json") or {}


def command_line(argv: list[str], runs_dir: Path | None = None) -> str:
    """What a terminal runs to do what the job does (the module is found from the project folder). With
    `runs_dir` (an app that may not train: its page is no local user's), no server path: as public_text shows it."""
    if runs_dir is not None:
        return public_text(shlex.join(["python", *argv[1:]]), runs_dir)
    return f"cd {shlex.quote(str(REPO))} && {shlex.join(argv)}"


class TrainingJobs:
    """A queue of training jobs run one after another (one worker thread) in child processes."""

    def __init__(self, runs_dir: Path, *, data_dir: Path | None = None, device: str = "auto",
                 on_finished: Callable[[Job], None] = lambda job: None, python: str = sys.executable) -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.data_dir = Path(data_dir if data_dir is not None else "data").resolve()
        self.uploads = self.data_dir / "uploads"      # unpacked zips (ui/upload.py), one folder each
        self.device, self.on_finished, self.python = device, on_finished, python
        self.jobs: list[Job] = []
        self.finished_count = 0           # bumps when a job finishes: the UI re-lists models then
        self._cond = threading.Condition()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training-jobs")
        self._closed = False
        atexit.register(self.close)

    # --- requests -----------------------------------------------------------------------------
    def argv(self, request: TrainRequest, run_dir: Path | None = None, resume: bool = False) -> list[str]:
        """The command line of a run of `request` in `run_dir` (default: the folder one started now gets)."""
        data = self.data_dir
        if request.dataset is not None:
            data = self.uploads / request.dataset
            if not (ID.fullmatch(request.dataset) and data.is_dir()):
                raise LookupError(f"dataset {request.dataset!r} is no zip uploaded to this app; upload it again")
        return [self.python, "-m", "training.train", *(["--resume"] if resume else request.flags()),
                "--data-dir", str(data), "--device", self.device, "--no-progress",
                "--out", str(run_dir or self._new_run_dir(request))]

    def submit(self, requests: list[TrainRequest], owner: str | None = None) -> list[Job]:
        """Queue new runs (two for "both"); each starts when the jobs before it are done."""
        with self._cond:
            self._check_room(len(requests))
            return [self._enqueue(request, self._new_run_dir(request), owner) for request in requests]

    def resume(self, job_id: int | None = None, owner: str | None = None) -> Job:
        """Queue the stopped job `job_id` (default: the latest stopped one) to continue from its checkpoint."""
        with self._cond:
            stopped = [j for j in self.jobs if j.status in (STOPPED, FAILED) and (job_id is None or j.id == job_id)
                       and (j.run_dir / "checkpoint.pt").is_file()]
            if not stopped:
                raise LookupError("no stopped run to resume" if job_id is None else
                                  f"job {job_id} is not a stopped run with a checkpoint")
            old = self._own(stopped, owner, "resume")[-1]
            if any(j.run_dir == old.run_dir and j.status in (QUEUED, RUNNING, STOPPING) for j in self.jobs):
                raise LookupError(f"{old.key} is already queued or running")
            self._check_room(1)
            return self._enqueue(old.request, old.run_dir, owner, resume=True)

    def stop(self, job_id: int | None = None, owner: str | None = None) -> Job:
        """SIGINT to the running job (it checkpoints and exits); a queued job is just taken off the queue."""
        with self._cond:
            candidates = [j for j in self.jobs if j.status in (RUNNING, QUEUED) and (job_id is None or j.id == job_id)]
            if not candidates:
                raise LookupError("nothing is running or queued" if job_id is None else
                                  f"job {job_id} is not running or queued")
            mine = self._own(candidates, owner, "stop")
            job = next((j for j in mine if j.status == RUNNING), mine[0])
            job.status = CANCELLED if job.status == QUEUED else STOPPING
            if job.process is not None and job.process.poll() is None:
                job.process.send_signal(signal.SIGINT)
            self._cond.notify_all()
            return job

    def close(self) -> None:
        """Stop the running job (it checkpoints) and the worker; called at exit."""
        with self._cond:
            self._closed = True
            for job in self.jobs:
                job.status = CANCELLED if job.status == QUEUED else job.status
                if job.process is not None and job.process.poll() is None:
                    job.process.send_signal(signal.SIGINT)
        self._worker.shutdown(wait=False, cancel_futures=True)
        for job in (j for j in self.jobs if j.process is not None):
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

    def wait(self, job: Job, statuses: tuple[str, ...], timeout: float) -> bool:
        """Block until `job` has one of `statuses` (for tests and scripts); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: job.status in statuses, timeout)

    # --- internals ----------------------------------------------------------------------------
    @staticmethod
    def _own(jobs: list[Job], owner: str | None, what: str) -> list[Job]:
        """The jobs of `jobs` that `owner` may act on (None: in-process, any); LookupError if none."""
        mine = [j for j in jobs if owner is None or j.owner in (None, owner)]
        if not mine:
            raise LookupError(f"job {jobs[0].id} was started by another page or client; only that one may {what} it "
                              "(a reloaded page is a new one; Ctrl-C in the app's terminal stops every run, with a "
                              "checkpoint)")
        return mine

    def _check_room(self, count: int) -> None:
        waiting = sum(j.status == QUEUED for j in self.jobs)
        if waiting + count > MAX_WAITING:
            raise LookupError(f"the queue is full ({waiting} run(s) waiting, at most {MAX_WAITING}): wait for one "
                              "to start, or stop one")

    def _new_run_dir(self, request: TrainRequest) -> Path:
        folder = self.runs_dir / f"{request.task}{'-re' if request.random_erasing else ''}"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        taken = {j.run_dir for j in self.jobs}
        run_dir, n = folder / stamp, 1
        while run_dir in taken or run_dir.exists():
            n += 1
            run_dir = folder / f"{stamp}-{n}"
        return run_dir

    def _enqueue(self, request: TrainRequest, run_dir: Path, owner: str | None, resume: bool = False) -> Job:
        if self._closed:
            raise LookupError("the app is shutting down")
        job = Job(len(self.jobs) + 1, request, run_dir, self.argv(request, run_dir, resume), owner, resume)
        self.jobs.append(job)
        self._worker.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        with self._cond:
            if job.status != QUEUED:              # stopped while it waited
                return
            job.status = RUNNING
            self._cond.notify_all()
        try:
            process = subprocess.Popen(job.argv, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                       start_new_session=True)   # a Ctrl-C meant for the app reaches it via close()
        except OSError as e:
            return self._finish(job, None, f"could not start: {e}")
        with self._cond:
            job.process = process
            if job.status == STOPPING:            # Stop arrived before the process existed
                process.send_signal(signal.SIGINT)
        for line in process.stdout:
            job.log.append(line.rstrip("\n"))
        self._finish(job, process.wait())

    def _finish(self, job: Job, code: int | None, note: str = "") -> None:
        job.final = job.progress()
        with self._cond:
            job.ended = time.time()
            if note:
                job.log.append(note)
            job.status = FINISHED if code == 0 else \
                STOPPED if code in INTERRUPTED_CODES or job.status == STOPPING else FAILED
            if job.status == FINISHED:
                self.finished_count += 1
            self._cond.notify_all()
        if job.status == FINISHED:
            try:
                self.on_finished(job)
            except Exception as e:   # the job finished; a failed re-listing must not kill the worker
                job.log.append(f"(the app could not re-list its models: {type(e).__name__}: {e})")
