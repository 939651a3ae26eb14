"""Issue 13 §2 in a real browser: from the Train tab a user starts a real tiny MNIST run (the training
CLI as a separate process, generated MNIST in the real idx format), watches its progress arrive,
stops it, resumes it, sees it finish and classifies with it in the MNIST tab, without restarting
the app; a second run asked for while one runs waits in the queue.

It relies only on: Stop leaves a resumable run, Resume finishes it (the run is stopped once an
epoch has begun after the first, so a checkpoint exists whichever step the stop lands on).
Waits are on what the page shows, never on sleeps.
"""
from __future__ import annotations

import re

import pytest

from tests.browser_helpers import (ASSETS, chromium, launch, needs_browser, open_page, screenshot,
                                   top_class)

pytestmark = needs_browser

# The advanced fields: 3 epochs of 16 steps (128 images, batch 8), 32 validation images: a run of
# seconds that still lasts long enough for Stop to land in it.
TINY = {"Epochs": 3, "Batch size": 8, "Training images (subset)": 128, "Validation images (subset)": 32}
TIMEOUT_MS = 180_000     # a tiny run on a loaded 2-core machine can take minutes


@pytest.fixture(scope="module")
def studio(tmp_path_factory, mnist_dir):
    """The app with training on (loopback), an empty runs folder and generated MNIST as --data-dir."""
    import app
    from ui.catalog import Catalog
    runs = tmp_path_factory.mktemp("train-runs")
    demo = app.build_demo(Catalog.from_sources(runs), data_dir=mnist_dir, training_off=None, train_device="cpu")
    demo.url = launch(demo)
    yield demo
    demo.trainer.jobs.close()
    demo.close()


def job_row(page, job: int, status: str):
    """The row of job `job` in the jobs table once it shows `status`."""
    return page.locator("#train-jobs [role=row][data-index]").filter(
        has_text=re.compile(rf"^\s*{job}\s.*\b{status}\b", re.S))


def test_train_watch_stop_resume_finish_and_classify(studio):
    playwright, browser = chromium()
    try:
        page = open_page(browser, studio.url, height=1100)
        page.set_default_timeout(TIMEOUT_MS)
        page.get_by_role("tab", name="Train", exact=True).click()
        page.get_by_text("Advanced (blank: the preset's value)").click()
        for field, value in TINY.items():
            page.get_by_label(field, exact=True).fill(str(value))
            page.get_by_label(field, exact=True).press("Tab")
        # The form reached the server: the command preview is the command the job will run.
        flags = "--task mnist --preset quick --epochs 3 --batch-size 8 --limit-train 128 --limit-val 32"
        page.locator("#train-command").filter(has_text=flags).wait_for()

        page.locator("#train-start").click()
        page.locator("#train-message").filter(has_text="job 1:").wait_for()
        assert "starting now" in page.locator("#train-message").inner_text()
        progress = page.locator("#train-progress")
        # Live progress (progress.json): epoch and step of 3 epochs of 16 steps, images/s, ETAs.
        progress.filter(has_text=re.compile(r"Running.*epoch [23]/3 · step \d+/16", re.S)).wait_for()
        assert "run ETA" in progress.inner_text()
        screenshot(page, "browser-train-running")
        page.locator("#train-stop").click()
        page.locator("#train-message").filter(has_text="SIGINT sent").wait_for()
        progress.filter(has_text="Stopped").wait_for()
        job_row(page, 1, "stopped").wait_for()
        assert "--resume --out" in page.locator("#train-log textarea").input_value()

        page.locator("#train-resume").click()
        page.locator("#train-message").filter(has_text="job 2: resuming").wait_for()
        progress.filter(has_text="Running").wait_for()
        # A second run asked for while one runs waits its turn.
        page.locator("#train-start").click()
        page.locator("#train-message").filter(has_text="job 3:").wait_for()
        assert "queued behind 1 run" in page.locator("#train-message").inner_text()
        job_row(page, 3, "queued").wait_for()
        job_row(page, 2, "running").wait_for()
        screenshot(page, "browser-train-queued")

        job_row(page, 2, "finished").wait_for()
        job_row(page, 3, "running").wait_for()
        page.locator("#train-stop").click()                  # the queued run started: stop it too
        job_row(page, 3, "stopped").wait_for()
        key = studio.trainer.jobs.get(1).key
        assert (studio.trainer.jobs.get(1).run_dir / "model.safetensors").is_file()

        # The finished run is listed at once and classifies, without a restart.
        page.get_by_role("tab", name="MNIST", exact=True).click()
        assert page.locator("#mnist-run input").input_value().startswith(key)
        page.get_by_role("tab", name="Upload", exact=True).click()
        page.locator("#mnist-upload input[type=file]").set_input_files(str(ASSETS / "mnist_3.png"))
        assert top_class(page, "#mnist-label")[0] in [str(d) for d in range(10)]
        assert not page.errors, page.errors
    finally:
        browser.close()
        playwright.stop()
    assert studio.catalog.default_key("mnist") == key
