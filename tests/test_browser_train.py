"""The Train tab in a real browser (Chromium, one server with training on, real training processes).

- Issue 13 §2: a user starts a tiny MNIST run (generated MNIST in the real idx format), watches its progress,
  stops it, resumes it, sees it finish and classifies with it in the MNIST tab, without restarting the app;
  a second run asked for while one runs waits in the queue.
- Issue 24 §2-4 at 1280 px: blank Advanced fields stay blank and show the preset's value; the command shown is
  the job's and wraps; the jobs table is not cut; the message of the last button is gone once a job ended.
- Issue 21 §2 at 390x844 (a phone): "Your images" takes a zip of class folders, shows the classes and counts,
  and trains on them (start, watch, stop, resume, finish); the command wraps, the table is not cut.

Each relies only on: Stop leaves a resumable run, Resume finishes it (a run is stopped once an epoch has
begun after the first, so a checkpoint exists whichever step the stop lands on). Waits are on what the page
shows, never on sleeps.
"""
from __future__ import annotations

import re

import pytest

from tests.browser_helpers import (ASSETS, choose, cut_off, launch, needs_browser, open_page,
                                   reset_toasts, screenshot, top_class)

pytestmark = needs_browser

# The advanced fields: 3 epochs of 16 steps (128 images, batch 8), 32 validation images: a run of
# seconds that still lasts long enough for Stop to land in it.
TINY = {"Epochs": 3, "Batch size": 8, "Training images (subset)": 128, "Validation images (subset)": 32}
TIMEOUT_MS = 180_000     # a tiny run on a loaded 2-core machine can take minutes


@pytest.fixture(scope="module")
def studio(tmp_path_factory, mnist_dir):
    """The app with training on (loopback), an empty runs folder, and a data folder with generated MNIST."""
    import app
    from ui.catalog import Catalog
    root = tmp_path_factory.mktemp("train-app")
    (root / "data").mkdir()
    (root / "data" / "MNIST").symlink_to(mnist_dir / "MNIST")
    demo = app.build_demo(Catalog.from_sources(root / "runs"), data_dir=root / "data", training_off=None,
                          train_device="cpu")
    demo.url = launch(demo)
    yield demo
    demo.trainer.jobs.close()
    demo.close()


def job_row(page, job: int, status: str):
    """The row of job `job` in the jobs table once it shows `status`."""
    return page.locator("#train-jobs [role=row][data-index]").filter(
        has_text=re.compile(rf"^\s*{job}\s.*\b{status}\b", re.S))


def fill(page, fields: dict) -> None:
    page.get_by_text("Advanced (blank: the preset's value, shown in grey)").click()
    for field, value in fields.items():
        page.get_by_label(field, exact=True).fill(str(value))
        page.get_by_label(field, exact=True).press("Tab")


def stop_and_resume(page, job: int, epochs: int) -> None:
    """Stop job `job` once its second epoch runs, see it stopped, resume it as job `job + 1`."""
    progress = page.locator("#train-progress")
    progress.filter(has_text=re.compile(rf"Running.*epoch ([2-9]|\d\d)/{epochs} · step \d+/", re.S)).wait_for()
    assert "run ETA" in progress.inner_text()
    page.locator("#train-stop").click()
    page.locator("#train-message").filter(has_text="SIGINT sent").or_(progress.filter(has_text="Stopped")).wait_for()
    progress.filter(has_text="Stopped").wait_for()
    job_row(page, job, "stopped").wait_for()
    assert "--resume --out" in page.locator("#train-log textarea").input_value()
    page.locator("#train-resume").click()
    page.locator("#train-message").filter(has_text=f"job {job + 1}: resuming").wait_for()


def test_train_watch_stop_resume_finish_and_classify(browser, studio):
    from playwright.sync_api import expect
    page = None
    try:
        page = open_page(browser, studio.url, height=1100)
        page.set_default_timeout(TIMEOUT_MS)
        page.get_by_role("tab", name="Train", exact=True).click()
        fill(page, TINY)
        # Blank fields stay blank and show the preset's value in grey (they showed 0, read as lr = 0).
        for field, grey in (("Learning rate", "0.001"), ("Seed", "0")):
            box = page.get_by_label(field, exact=True)
            assert (box.input_value(), box.get_attribute("placeholder")) == ("", grey)
        # The form reached the server: the command is the job's own, complete, and wraps.
        jobs = studio.trainer.jobs
        flags = (f"--task mnist --preset quick --epochs 3 --batch-size 8 --limit-train 128 --limit-val 32 "
                 f"--data-dir {jobs.data_dir} --device cpu --no-progress --out {jobs.runs_dir}/mnist/")
        expect(page.locator("#train-command textarea")).to_have_value(re.compile(re.escape(flags)), timeout=TIMEOUT_MS)
        assert not cut_off(page.locator("#train-command")), cut_off(page.locator("#train-command"))

        page.locator("#train-start").click()
        page.locator("#train-message").filter(has_text="job 1:").wait_for()
        assert "starting now" in page.locator("#train-message").inner_text()
        screenshot(page, "browser-train-running")
        stop_and_resume(page, 1, 3)
        page.locator("#train-progress").filter(has_text="Running").wait_for()
        # A second run asked for while one runs waits its turn. It is long (30 epochs), so that the Stop
        # below lands while it trains however slowly the page follows (3 epochs had finished before it).
        page.get_by_label("Epochs", exact=True).fill("30")
        page.get_by_label("Epochs", exact=True).press("Tab")
        page.locator("#train-start").click()
        page.locator("#train-message").filter(has_text="job 3:").wait_for()
        assert "queued behind 1 run" in page.locator("#train-message").inner_text()
        job_row(page, 3, "queued").wait_for()
        job_row(page, 2, "running").wait_for()
        assert not cut_off(page.locator("#train-jobs")), cut_off(page.locator("#train-jobs"))
        screenshot(page, "browser-train-queued")

        job_row(page, 2, "finished").wait_for()
        # A job ended: the last button's message ("queued behind ...") is gone, not left to mislead.
        page.locator("#train-message").filter(has_text="job 3:").wait_for(state="detached")
        job_row(page, 3, "running").wait_for()
        page.locator("#train-stop").click()                  # the queued run started: stop it too
        job_row(page, 3, "stopped").wait_for()
        assert not cut_off(page.locator("#train-jobs")), cut_off(page.locator("#train-jobs"))
        key = jobs.jobs[0].key
        assert (jobs.jobs[0].run_dir / "model.safetensors").is_file()

        # The finished run is listed at once and classifies, without a restart.
        page.get_by_role("tab", name="MNIST", exact=True).click()
        assert page.locator("#mnist-run input").input_value().startswith(key)
        page.get_by_role("tab", name="Upload", exact=True).click()
        page.locator("#mnist-upload input[type=file]").set_input_files(str(ASSETS / "mnist_3.png"))
        assert top_class(page, "#mnist-label")[0] in [str(d) for d in range(10)]
        assert not page.errors, page.errors
    finally:
        if page is not None:
            page.close()
    assert studio.catalog.default_key("mnist") == key


def test_your_images_from_a_zip_on_a_phone(browser, studio, tmp_path):
    from playwright.sync_api import expect

    import app
    from tests.test_train_upload import class_folders, make_zip
    archive = tmp_path / "my pets.zip"
    archive.write_bytes(make_zip(class_folders(("cat", "dog"), per_class=20, top="my pets/")
                                 + [("my pets/notes.txt", b"a note")]))
    page = None
    try:
        page = open_page(browser, studio.url, width=390, height=844)
        page.set_default_timeout(TIMEOUT_MS)
        page.get_by_role("button", name="More tabs").click()           # a phone has no room for every tab
        page.locator("button:not([tabindex])", has_text=re.compile("^Train$")).click()
        choose(page, "#train-task", "Your images")
        expect(page.locator("#train-command textarea")).to_have_value(re.compile("^# dataset is missing: upload a zip"),
                                                                  timeout=TIMEOUT_MS)
        # What cannot train is told in one line: a file that is no zip (ours), one over the upload limit (Gradio's).
        (tmp_path / "photo.zip").write_bytes((ASSETS / "mnist_3.png").read_bytes())
        (tmp_path / "huge.zip").write_bytes(b"PK\3\4" + b"\0" * app.MAX_FILE_SIZE)
        for name, told in (("photo.zip", "zip_file: not a zip file (expected a .zip of class folders)"),
                           ("huge.zip", 'File(s) exceed the maximum allowed size of 10.0 Mb: "huge.zip"')):
            reset_toasts(page)
            page.locator("#train-zip input[type=file]").set_input_files(str(tmp_path / name))
            page.wait_for_function("t => window.__toasts.texts.some(x => x.includes(t))", arg=told)
            page.locator("#train-zip button[aria-label=Clear]").click()
        page.locator("#train-zip input[type=file]").set_input_files(str(archive))
        found = page.locator("#train-found").filter(has_text="2 classes, 40 images")
        found.wait_for()
        assert "cat 20 · dog 20; 1 file(s) skipped" in found.inner_text()
        page.locator("#train-arch").get_by_text("VGG19-BN").click()
        fill(page, {"Epochs": 3, "Batch size": 2})   # 3 epochs of 16 steps
        expect(page.locator("#train-command textarea")).to_have_value(re.compile(
            r"--task folder --arch vgg19_bn_32 --preset quick --epochs 3 --batch-size 2 "
            rf"--data-dir {re.escape(str(studio.trainer.jobs.uploads))}/[0-9a-f]{{16}} --device cpu"), timeout=TIMEOUT_MS)
        assert not cut_off(page.locator("#train-command")), cut_off(page.locator("#train-command"))

        job = len(studio.trainer.jobs.jobs) + 1
        page.locator("#train-start").click()
        page.locator("#train-message").filter(has_text=f"job {job}: folder/").wait_for()
        stop_and_resume(page, job, 3)
        job_row(page, job + 1, "finished").wait_for()
        assert not cut_off(page.locator("#train-jobs")), cut_off(page.locator("#train-jobs"))
        screenshot(page, "browser-train-your-images-phone")
        assert (studio.trainer.jobs.jobs[job - 1].run_dir / "model.safetensors").is_file()
        assert not page.errors, page.errors
    finally:
        if page is not None:
            page.close()
