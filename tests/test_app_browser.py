"""A real browser (Playwright + Debian's Chromium) uses the launched app: it uploads an image through
the page, draws a digit on the sketchpad with the mouse, and sees probabilities. Screenshots go to
test-artifacts/ (git-ignored). One browser for the module, on the shared app_server.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
INSTALL = "apt-get install -y chromium && pip install playwright"

pytestmark = [
    pytest.mark.skipif(not (CHROMIUM.is_file() or shutil.which("chromium")),
                       reason=f"browser tests need Chromium: {INSTALL}"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason=f"browser tests need Playwright: {INSTALL}"),
]
PERCENT = re.compile(r"\d+(\.\d+)?%")
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def page(app_server):
    from playwright.sync_api import sync_playwright
    _, url = app_server
    ARTIFACTS.mkdir(exist_ok=True)
    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("#cifar10-input")
        page.errors = errors
        yield page
        browser.close()


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
    page.get_by_role("button", name="ship", exact=True).first.click()
    shows_probabilities(page, "#cifar10-label")


def test_draw_a_digit_with_the_mouse_and_see_probabilities(page, app_catalog):
    page.get_by_role("tab", name="MNIST").click()
    sketch = page.locator("#mnist-sketch")
    sketch.get_by_role("button", name="Brush").click()
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
    page.screenshot(path=str(ARTIFACTS / "browser-bad-upload.png"), full_page=True)
    page.locator("#cifar10-input").get_by_role("button", name=re.compile("Clear|Remove", re.I)).first.click()
    page.locator("#cifar10-input input[type=file]").set_input_files(str(ASSETS / "cat_drawing.png"))
    shows_probabilities(page, "#cifar10-label")
