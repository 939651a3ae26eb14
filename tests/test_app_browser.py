"""A real browser (Playwright + Debian's Chromium) uses the launched app: it uploads an image through
the page, draws a digit on the sketchpad with the mouse, and sees probabilities. Screenshots go to
test-artifacts/ (git-ignored). One browser for the session (tests/conftest.py).
"""
from __future__ import annotations

import re
import shutil

import pytest

from tests.browser_helpers import ARTIFACTS, ASSETS, PERCENT, TIMEOUT_MS, choose, needs_browser
from tests.conftest import REPO

pytestmark = needs_browser


@pytest.fixture(scope="module")
def studio(app_runs, catsdogs_dir, mnist_dir, tmp_path_factory):
    """The app the browser uses: every tiny run, a second MNIST run (the same files under another
    name, to switch models) and the validation images for the galleries. (catalog, url)"""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    root = tmp_path_factory.mktemp("browser-runs")
    for run in sorted(app_runs.glob("*/*")):     # copies: the app follows no link out of its runs folder
        if (run / "config.json").is_file():
            shutil.copytree(run, root / run.parent.name / run.name, ignore=shutil.ignore_patterns("checkpoint.pt", "tb"))
    if (app_runs / "mnist" / "tiny" / "config.json").is_file():
        shutil.copytree(root / "mnist" / "tiny", root / "mnist" / "tiny-copy")
    data = tmp_path_factory.mktemp("browser-data")
    (data / "val").symlink_to(catsdogs_dir / "val", target_is_directory=True)
    (data / "MNIST").symlink_to(mnist_dir / "MNIST", target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNN_STUDIO_DATA_DIR", str(data))
        catalog = Catalog.from_sources(root)
        demo, url = launch_app(catalog)
    yield catalog, url
    demo.close()


def open_page(browser, url: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#app-title")
    page.errors = errors
    return page


@pytest.fixture(scope="module")
def page(browser, studio):
    page = open_page(browser, studio[1])
    yield page
    page.close()


def shows_probabilities(page, selector: str) -> str:
    """Wait until the gr.Label at `selector` shows percentages; return its text."""
    label = page.locator(selector)
    label.filter(has_text=PERCENT).wait_for()
    return label.inner_text()


def test_upload_an_image_and_see_probabilities(page):
    page.get_by_role("tab", name="CIFAR-10").click()
    page.locator("#cifar10-input input[type=file]").set_input_files(str(ASSETS / "sample_boat.png"))
    text = shows_probabilities(page, "#cifar10-label")
    classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    assert classes & set(text.split())
    page.screenshot(path=str(ARTIFACTS / "browser-cifar10.png"), full_page=True)
    assert not page.errors


def test_clicking_an_example_classifies_it(page):
    page.get_by_role("tab", name="CIFAR-10").click()
    page.locator("#cifar10-input").get_by_role("button", name=re.compile("Clear|Remove", re.I)).first.click()
    page.locator("#cifar10-label").filter(has_text=PERCENT).wait_for(state="detached")
    page.locator("#cifar10-examples button").filter(has_text="ship #").click()
    shows_probabilities(page, "#cifar10-label")


def test_draw_a_digit_with_the_mouse_and_see_probabilities(page):
    page.get_by_role("tab", name="MNIST").click()
    sketch = page.locator("#mnist-sketch")
    sketch.get_by_role("button", name="Brush", exact=True).click()
    box = sketch.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 25):  # a slightly slanted vertical stroke: a "1"
        page.mouse.move(x + step * 0.8, y + step * box["height"] * 0.025)
    page.mouse.up()
    text = shows_probabilities(page, "#mnist-label")
    assert set(text.split()) & {str(d) for d in range(10)}
    page.locator("#mnist-seen img").wait_for()  # the processed 32x32 input is shown beside them
    page.screenshot(path=str(ARTIFACTS / "browser-mnist.png"), full_page=True)
    assert not page.errors


def test_an_unreadable_upload_shows_a_message_and_the_page_keeps_working(page, tmp_path):
    page.get_by_role("tab", name="CIFAR-10").click()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#cifar10-input").get_by_role("button", name=re.compile("Clear|Remove", re.I)).first.click()
    page.locator("#cifar10-input input[type=file]").set_input_files(str(bad))
    page.get_by_text(re.compile("Could not read the image")).first.wait_for()
    page.locator("#cifar10-input img").wait_for(state="detached")       # the page clears what it could not read
    page.screenshot(path=str(ARTIFACTS / "browser-bad-upload.png"), full_page=True)
    page.locator("#cifar10-input input[type=file]").set_input_files(str(ASSETS / "cat_drawing.png"))
    shows_probabilities(page, "#cifar10-label")


# --- issue 15: every tab as people use it ------------------------------------------------------


def test_augmentation_uses_the_image_last_chosen(page):
    """15.8: a sample picked after an upload is the one augmented, and the upload goes away."""
    page.get_by_role("tab", name="Augmentation").click()
    page.locator("#augment-upload input[type=file]").set_input_files(str(ASSETS / "cat_drawing.png"))
    recipe = page.locator("#augment-recipe")
    recipe.filter(has_text="on your image").wait_for()
    choose(page, "#augment-sample", "mnist 7")
    recipe.filter(has_text="on mnist 7").wait_for()
    page.locator("#augment-upload img").wait_for(state="detached")
    page.get_by_role("button", name="Augment", exact=True).click()
    recipe.filter(has_text="on mnist 7").wait_for()


def test_training_curves_show_each_epoch_as_a_point(page):
    """15.11: the curves are drawn with a marker per epoch and whole-epoch ticks (checked on the
    figure in tests/test_curves.py); here: the browser shows them."""
    page.get_by_role("tab", name="Training curves").click()
    for plot in ("#curves-accuracy", "#curves-loss"):
        page.locator(f"{plot} img").wait_for()


@pytest.fixture(scope="module")
def empty_page(browser, tmp_path_factory):
    """The app with no run at all."""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    demo, url = launch_app(Catalog.from_sources(tmp_path_factory.mktemp("no-runs")))
    page = open_page(browser, url)
    yield page
    page.close()
    demo.close()


def test_the_start_message_names_the_apps_own_share_flag(browser, tmp_path):
    """15.12: `python app.py` prints its own --share hint, not Gradio's share=True advice, and the
    URL it prints serves the app."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "CNN_STUDIO_HUB_MODELS": "", "PYTHONUNBUFFERED": "1"}
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "app.py", "--runs", str(tmp_path), "--port", str(port)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:                 # the start-up lines, read as they come
            lines.append(line)
            if "--share" in line or "share=True" in line:
                break
        output = "".join(lines)
        assert "python app.py --share" in output and "share=True" not in output, output
        url = re.search(r"Running on local URL:\s+(\S+)", output).group(1)
        page = open_page(browser, url)
        page.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
