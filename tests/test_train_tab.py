"""The Train tab with real training processes: a tiny MNIST run (generated data in the real idx format)
is started from the page in Chromium, its progress arrives, it is stopped (SIGINT: checkpoint) and
resumed, it finishes and classifies in the MNIST tab, without restarting the server. Through
gradio_client: a second request while one runs is queued, never run in parallel.

Waits are on synchronisation points (what the page or progress.json shows), never on sleeps.
"""
from __future__ import annotations

import importlib.util
import re
import time

import pytest

import app
from tests.studio_helpers import CHROMIUM_ARGS, REPO, chromium_path
from ui.jobs import CANCELLED, FINISHED, QUEUED, RUNNING, STOPPED, STOPPING

ASSETS = REPO / "assets"
TIMEOUT_S = 900          # a tiny run on a loaded 2-core machine can take minutes
# The advanced fields: 3 epochs of 4 steps (64 images, batch 16), 32 validation images.
TINY = dict(epochs=3, batch_size=16, limit_train=64, limit_val=32)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, mnist_dir):
    """The app with training on (loopback), an empty runs folder and generated MNIST: (demo, url)."""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    runs = tmp_path_factory.mktemp("studio-runs")
    # generated MNIST in the real idx format (tests/conftest.py)
    demo, url = launch_app(Catalog.from_sources(runs), data_dir=mnist_dir, training_off=None, train_device="cpu")
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
    form = ["mnist", "baseline", "quick", TINY["epochs"], TINY["batch_size"], None, None, TINY["limit_train"],
            TINY["limit_val"]]
    first = client.predict(*form, api_name="/train_start")
    second = client.predict(*form[:1], "random-erasing", *form[2:], api_name="/train_start")
    assert "starting now" in first and "queued behind 1 run" in second
    a, b = jobs.jobs[-2], jobs.jobs[-1]
    assert b.status == QUEUED and a.status in (QUEUED, RUNNING)
    wait_until(lambda: a.progress().get("status") == "training", "the first run's progress.json")
    assert b.status == QUEUED and b.process is None          # not run in parallel
    progress, table, *_ = client.predict(api_name="/train_status")
    assert "Running" in progress and re.search(r"epoch \d/3", progress)
    assert [row[4] for row in table["data"][-2:]] == [RUNNING, QUEUED]
    assert "taken off the queue" in client.predict(b.id, api_name="/train_stop")
    assert b.status == CANCELLED
    assert "SIGINT sent" in client.predict(None, api_name="/train_stop")
    assert jobs.wait(a, (STOPPED,), TIMEOUT_S), a.log
    assert b.process is None




def test_blank_advanced_fields_on_the_page_mean_the_presets_values_and_api_zeros_are_refused():
    """The page sends 0 for a Number left blank once another field changes: there 0 means "the
    preset's value" (the Train-tab browser test fills only some fields); an API caller's 0 is wrong."""
    import gradio as gr
    from ui import inputs
    from ui.train_tab import parse_request
    with inputs.browser_event():
        [request] = parse_request("mnist", "baseline", "quick", 3, 0, 0, 0, 0, 0)
    assert request.flags() == ["--task", "mnist", "--preset", "quick", "--epochs", "3"]
    with pytest.raises(gr.Error, match="batch_size must be a whole number from 1"):
        parse_request("mnist", "baseline", "quick", 3, 0)
