"""The Train tab through a real server (gradio_client), and its handlers.

- A tiny MNIST run (generated data in the real idx format) started by /train_start: a second request
  while one runs is queued, never run in parallel (real training processes).
- Jobs have a limit and an owner (issue 23 §5): a few waiting jobs at most, epochs and batch size bounded
  by the machine, and only the client that started a job may stop or resume it (two clients). These run
  a stand-in for the training CLI (FAKE_CLI): what is tested is the queue, not training.
- The command shown runs as shown (issue 24 §2): pasted into a shell elsewhere, it trains into the app's
  runs folder on the app's data; the progress area (issue 24 §4): a stopped job keeps its own progress, the
  curves are the Training curves tab's (whole epochs, short legends, a notice before the first epoch).

Waits are on synchronisation points (what the page or progress.json shows), never on sleeps.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time

import pytest

from ui.jobs import CANCELLED, FINISHED, QUEUED, RUNNING, STOPPED

TIMEOUT_S = 900          # a tiny run on a loaded 2-core machine can take minutes
# The advanced fields: 3 epochs of 4 steps (64 images, batch 16), 32 validation images.
TINY = dict(epochs=3, batch_size=16, limit_train=64, limit_val=32)
# Stands in for `python -m training.train`: makes the run folder and a checkpoint, says where it is, and
# waits for SIGINT (then exits as the CLI does after one: 130).
FAKE_CLI = """#!{python}
import json, signal, sys, time
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "checkpoint.pt").write_bytes(b"")
(out / "progress.json").write_text(json.dumps({{"status": "training", "epoch": 1, "epochs": 3, "step": 1,
                                                "steps_per_epoch": 4}}))
signal.signal(signal.SIGINT, lambda *a: sys.exit(130))
time.sleep(600)
"""


@pytest.fixture(scope="module")
def studio(tmp_path_factory, mnist_dir):
    """The app with training on (loopback), an empty runs folder and generated MNIST: (demo, url)."""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    runs = tmp_path_factory.mktemp("studio-runs")
    demo, url = launch_app(Catalog.from_sources(runs), data_dir=mnist_dir, training_off=None, train_device="cpu")
    yield demo, url
    demo.trainer.jobs.close()
    demo.close()


@pytest.fixture
def fake_studio(tmp_path):
    """The same app, its jobs run by FAKE_CLI: (demo, url)."""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    fake = tmp_path / "fake-cli"
    fake.write_text(FAKE_CLI.format(python=sys.executable))
    fake.chmod(0o755)
    demo, url = launch_app(Catalog.from_sources(tmp_path / "runs"), data_dir=tmp_path / "data", training_off=None,
                           train_device="cpu")
    demo.trainer.jobs.python = str(fake)
    yield demo, url
    demo.trainer.jobs.close()
    demo.close()


def wait_until(condition, what: str, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)   # polling interval of a sync point, not a timed expectation
    return value


def test_a_second_request_waits_in_the_queue(studio):
    from gradio_client import Client
    demo, url = studio
    jobs = demo.trainer.jobs
    client = Client(url, verbose=False, download_files=False)
    form = dict(task="mnist", variant="baseline", preset="quick", **TINY)
    first = client.predict(**form, api_name="/train_start")
    second = client.predict(**{**form, "variant": "random-erasing"}, api_name="/train_start")
    assert "starting now" in first and "queued behind 1 run" in second
    a, b = jobs.jobs[-2], jobs.jobs[-1]
    assert b.status == QUEUED and a.status in (QUEUED, RUNNING)
    wait_until(lambda: a.progress().get("status") == "training", "the first run's progress.json")
    assert b.status == QUEUED and b.process is None          # not run in parallel
    progress, table, *_ = client.predict(api_name="/train_status")
    assert "Running" in progress and re.search(r"epoch \d/3", progress)
    assert [row[2].split()[0] for row in table["data"][-2:]] == [RUNNING, QUEUED]
    assert "taken off the queue" in client.predict(b.id, api_name="/train_stop")
    assert b.status == CANCELLED
    assert "SIGINT sent" in client.predict(None, api_name="/train_stop")
    assert jobs.wait(a, (STOPPED,), TIMEOUT_S), a.log
    assert b.process is None


def test_the_command_shown_runs_as_shown(studio, tmp_path):
    """Pasted into a shell in another folder, the preview trains into the app's runs folder on the app's data
    (it was `... --out runs/mnist/<start time>`: a bash syntax error, reading ./data and writing ./runs)."""
    from gradio_client import Client
    demo, url = studio
    client = Client(url, verbose=False, download_files=False)
    form = dict(task="mnist", variant="baseline", preset="quick", epochs="1", batch_size="16", limit_train="32",
                limit_val="16")
    command = client.predict(**form, api_name="/train_command")
    argv = shlex.split(command.partition(" && ")[2])
    out = argv[argv.index("--out") + 1]
    assert argv[argv.index("--data-dir") + 1] == str(demo.trainer.jobs.data_dir)
    assert out.startswith(f"{demo.trainer.jobs.runs_dir}/mnist/") and argv[argv.index("--device") + 1] == "cpu"
    subprocess.run(["bash", "-c", command], cwd=tmp_path, check=True, timeout=TIMEOUT_S, capture_output=True)
    assert json.loads((demo.trainer.jobs.runs_dir / "mnist" / out.rsplit("/", 1)[1] / "config.json").read_text())
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()
    # Start runs exactly that command (only the start time in the run folder's name may differ).
    client.predict(**form, api_name="/train_start")
    job = demo.trainer.jobs.jobs[-1]
    same = lambda args: [a for a in args if not a.startswith(str(demo.trainer.jobs.runs_dir))]  # noqa: E731
    assert same(job.argv) == same(argv)
    client.predict(job.id, api_name="/train_stop")
    assert demo.trainer.jobs.wait(job, (STOPPED, CANCELLED, FINISHED), TIMEOUT_S)


def test_jobs_belong_to_the_client_that_started_them(fake_studio):
    from gradio_client import Client
    demo, url = fake_studio
    jobs = demo.trainer.jobs
    alice, bob = (Client(url, verbose=False, download_files=False) for _ in range(2))
    assert "job 1:" in alice.predict("mnist", "baseline", "quick", api_name="/train_start")
    wait_until(lambda: jobs.jobs[0].progress().get("status") == "training", "the job's progress.json")
    for call in ((None, "/train_stop"), (1, "/train_stop")):
        with pytest.raises(Exception, match="job 1 was started by another page or client; only that one may stop"):
            bob.predict(call[0], api_name=call[1])
    assert jobs.jobs[0].status == RUNNING
    assert "SIGINT sent" in alice.predict(None, api_name="/train_stop")
    assert jobs.wait(jobs.jobs[0], (STOPPED,), 60)
    with pytest.raises(Exception, match="job 1 was started by another page or client; only that one may resume"):
        bob.predict(1, api_name="/train_resume")
    assert "job 2: resuming" in alice.predict(None, api_name="/train_resume")
    # Bob's own job is his to stop; Alice cannot take it off the queue.
    assert "queued behind 1 run" in bob.predict("cifar10", "baseline", "quick", api_name="/train_start")
    with pytest.raises(Exception, match="job 3 was started by another page or client"):
        alice.predict(3, api_name="/train_stop")
    assert "taken off the queue" in bob.predict(None, api_name="/train_stop")


def test_the_queue_and_each_run_are_bounded(fake_studio):
    """Twenty /train_start calls queued 40 jobs, of 1000 epochs in batches of 4096 (issue 23 §5)."""
    from gradio_client import Client
    from ui.jobs import MAX_BATCH, MAX_EPOCHS, MAX_WAITING
    demo, url = fake_studio
    client = Client(url, verbose=False, download_files=False)
    with pytest.raises(Exception, match=f"epochs must be a whole number from 1 to {MAX_EPOCHS}, not 1000"):
        client.predict("cifar10", "baseline", "full", 1000, api_name="/train_start")
    with pytest.raises(Exception, match=f"batch_size must be a whole number from 1 to {MAX_BATCH}, not 4096"):
        client.predict("cifar10", "baseline", "full", None, 4096, api_name="/train_start")
    client.predict("mnist", "baseline", "quick", api_name="/train_start")
    wait_until(lambda: demo.trainer.jobs.jobs[0].status == RUNNING, "the first job to start")
    for _ in range(MAX_WAITING // 2):
        client.predict("mnist", "both", "quick", api_name="/train_start")
    if MAX_WAITING % 2:
        client.predict("mnist", "baseline", "quick", api_name="/train_start")
    for variant in ("baseline", "both"):
        with pytest.raises(Exception, match=f"the queue is full \\({MAX_WAITING} run\\(s\\) waiting, at most"):
            client.predict("mnist", variant, "quick", api_name="/train_start")
    assert len(demo.trainer.jobs.jobs) == 1 + MAX_WAITING


def test_blank_advanced_fields_mean_the_presets_values_and_show_them():
    """A blank field stays blank and means the preset's value, which the field shows in grey (a gr.Number
    showed 0 there, read as lr = 0); an API caller's 0 is refused by name."""
    import gradio as gr
    from ui.train_tab import parse_request, task_options
    [request] = parse_request("mnist", "baseline", "quick", "3", "", " ", None)
    assert request.flags() == ["--task", "mnist", "--preset", "quick", "--epochs", "3"]
    with pytest.raises(gr.Error, match="batch_size must be a whole number from 1"):
        parse_request("mnist", "baseline", "quick", 3, 0)
    _, _, *fields = task_options("mnist", "quick")
    assert [f.placeholder for f in fields] == ["1", "128", "0.001", "0", "all", "all"]
    _, architecture, *fields = task_options("folder", "quick", "vgg19_bn_32")
    assert [f.placeholder for f in fields][:3] == ["10", "256", "0.1"] and architecture.visible


def test_the_progress_area_keeps_each_jobs_own_progress_and_draws_whole_epochs(tmp_path):
    from ui.jobs import Job, TrainingJobs, TrainRequest
    from ui.train_tab import Trainer, jobs_frame, poll, training_status
    jobs = TrainingJobs(tmp_path / "runs", data_dir=tmp_path)
    run = tmp_path / "runs" / "mnist" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "progress.json").write_text(json.dumps({"epoch": 1, "epochs": 2, "step": 3, "steps_per_epoch": 4}))
    stopped = Job(1, TrainRequest("mnist"), run, ["python"], status=RUNNING)
    jobs.jobs.append(stopped)
    trainer = Trainer(jobs)
    *_, seen = poll(trainer)
    _, _, acc, loss, *_ = training_status(trainer)
    assert [t.get_text() for t in acc.axes[0].texts] == ["no epoch finished yet: the curves start after the first"]
    jobs._finish(stopped, 130)                 # as after Stop: its progress is the checkpoint's place
    assert poll(trainer, seen)[7] == ""        # the message of the last button is cleared once a job ended
    resumed = Job(2, stopped.request, run, ["python"], status=RUNNING, resume=True)
    jobs.jobs.append(resumed)
    (run / "progress.json").write_text(json.dumps({"epoch": 2, "epochs": 2, "step": 1, "steps_per_epoch": 4}))
    (run / "history.json").write_text(json.dumps([{"epoch": e, "train_accuracy": 0.5, "val_accuracy": 0.6,
                                                   "train_loss": 1.0, "val_loss": 0.9} for e in (1, 2)]))
    assert list(jobs_frame(trainer)["state"]) == ["stopped · epoch 1/2, step 3/4",
                                                  "running (resume) · epoch 2/2, step 1/4"]
    _, _, acc, loss, *_ = training_status(trainer)
    for figure in (acc, loss):
        ax = figure.axes[0]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mnist train", "mnist val"]
        assert all(float(t).is_integer() for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1])
