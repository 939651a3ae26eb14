"""What the browser tests (tests/test_browser_*.py) share: a launched app, Chromium, a page, and the
DOM facts they read (toasts, boxes, a bar chart's x axis).

Every wait is on a state of the page (a text, an element attached or gone), never a sleep; the
timeouts are generous because the suite runs on a shared 2-core machine.
"""
from __future__ import annotations

import importlib.util
import re
import socket

import pytest

from tests.studio_helpers import CHROMIUM_ARGS, REPO, chromium_path

ASSETS = REPO / "assets"
ARTIFACTS = REPO / "test-artifacts"       # screenshots of what the tests saw (git-ignored)
TIMEOUT_MS = 120_000                      # a model call on a loaded 2-core machine can take seconds
PERCENT = re.compile(r"\d+(\.\d+)?%")
DIGITS = [str(d) for d in range(10)]
INSTALL = "apt-get install -y chromium && pip install playwright"

needs_browser = [
    pytest.mark.skipif(chromium_path() is None, reason=f"browser tests need Chromium: {INSTALL}"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason=f"browser tests need Playwright: {INSTALL}"),
]


def launch(demo):
    """Launch a built app on a free local port with the app's own launch options; returns its URL."""
    import app
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                            **app.launch_options())
    return url


def chromium():
    """(playwright, browser): Debian's Chromium driven by Playwright. Close both when done."""
    from playwright.sync_api import sync_playwright
    playwright = sync_playwright().start()
    return playwright, playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def open_page(browser, url: str, height: int = 900, width: int = 1280):
    """A new page on the app, loaded (its lists and opening tab final); `page.errors` collects uncaught page errors."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(COUNT_TOASTS)
    page.goto(url)
    # The page-load event has redrawn the model lists and chosen the opening tab: a click made
    # before that could be undone by it.
    page.wait_for_selector("body[data-views-rendered]")
    page.errors = errors
    return page


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def draw(page, points) -> None:
    """Drag the mouse along `points` (fractions of the canvas) on the MNIST sketchpad.

    One move per point: the sketchpad strokes the straight line between two moves (twelve moves a
    segment drew the same pixels, to 1 grey level), and each move costs headless Chromium's software
    renderer 0.1-0.3 s on two cores (a "0" of twelve moves a segment took 13-22 s to draw)."""
    area = page.locator("#mnist-sketch canvas").first.bounding_box()
    at = lambda x, y: (area["x"] + area["width"] * x, area["y"] + area["height"] * y)  # noqa: E731
    page.mouse.move(*at(*points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(*point))
    page.mouse.up()


SEVEN = [(0.35, 0.22), (0.65, 0.22), (0.45, 0.8)]   # a "7": a bar across the top, then a stroke to the lower left


def box(locator) -> dict:
    """The element's box on the page (its first match), as the browser lays it out."""
    return locator.evaluate("e => { const r = e.getBoundingClientRect(); "
                            "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }")


def overlaps(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def cut_off(locator) -> list[str]:
    """The texts of the visible parts of an element (itself included) whose content is wider than
    they are: cut off, hidden behind an ellipsis, or scrolled away. Empty when all of it shows."""
    return locator.evaluate("""e => [e, ...e.querySelectorAll('*')].filter(x => {
        const style = getComputedStyle(x);
        return style.visibility === 'visible' && style.display !== 'none' && x.getClientRects().length > 0
            && x.clientWidth > 0 && x.scrollWidth > x.clientWidth + 1; }).map(x => (x.innerText ?? x.textContent).slice(0, 80))""")


def cell(table: str, row: int, col: int) -> str:
    """The selector of a gr.Dataframe's body cell (Gradio 6 draws them as divs with role gridcell;
    its <td>s are a hidden copy that sizes the columns)."""
    return f'{table} [role=gridcell][data-testid="cell-{row}-{col}"]'


def x_axis(page, plot: str, axis: str = "X") -> tuple[str, list[str]]:
    """A Gradio plot's x (or `axis`) axis as Vega describes it (aria-label) and its tick texts, in order."""
    found = page.locator(f'{plot} [aria-roledescription="axis"][aria-label^="{axis}-axis"]')
    found.wait_for()
    return found.get_attribute("aria-label"), found.evaluate(
        "e => [...e.querySelectorAll('.role-axis-label text')].map(t => t.textContent)")


def assert_categorical_digits(page, plot: str) -> None:
    """The class axis (down the side of a probability chart) is Vega's discrete (band) scale with the
    ten digits, in order."""
    description, ticks = x_axis(page, plot, "Y")
    assert "discrete scale with 10 values" in description, description
    assert ticks == DIGITS, ticks


def open_tab(page, name: str) -> None:
    """Click the tab `name`; on a narrow page, where Gradio moves tabs that do not fit into a "More
    tabs" menu, open that menu first."""
    from playwright.sync_api import Error as PlaywrightError
    for attempt in range(6):     # at a phone's width Gradio may move a tab into the menu while it is clicked
        try:
            tab = page.get_by_role("tab", name=name, exact=True).filter(visible=True)
            if tab.count():
                tab.first.click(timeout=10_000)
                return
            menu = page.locator(".overflow-menu").filter(visible=True).filter(
                has=page.locator(".overflow-dropdown button").filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")))
            menu.first.get_by_role("button", name="More tabs").click(timeout=10_000)
            menu.first.locator(".overflow-dropdown button").filter(
                has_text=re.compile(rf"^\s*{re.escape(name)}\s*$")).click(timeout=10_000)
            return
        except PlaywrightError:
            if attempt == 5:
                raise
            page.keyboard.press("Escape")


def choose(page, dropdown: str, option: str) -> None:
    """Pick `option` in the gr.Dropdown with elem_id `dropdown` (a CSS selector)."""
    page.locator(f"{dropdown} input").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    # The chosen option's text starts with a check mark on a line of its own: compare the last line.
    match = [o for o in options.all() if o.inner_text().strip().splitlines()[-1].strip() == option]
    assert match, f"{option!r} is not among {options.all_inner_texts()}"
    match[0].click()


def shows_probabilities(page, selector: str) -> str:
    """Wait until the gr.Label at `selector` shows percentages; return its text."""
    label = page.locator(selector).filter(has_text=PERCENT)
    label.wait_for()
    return label.inner_text()


def top_class(page, selector: str) -> tuple[str, float]:
    """(class, percentage) at the top of a gr.Label, once it shows one."""
    lines = [line.strip() for line in shows_probabilities(page, selector).splitlines() if line.strip()]
    label, percent = next((a, b) for a, b in zip(lines, lines[1:]) if PERCENT.fullmatch(b))
    return label, float(percent.rstrip("%"))


# Installed in every page before it loads: counts every message the page shows in a toast.
# Gradio 6 groups the messages of one kind in one toast with a count ("Error (2)"), and a toast
# vanishes after seconds, so the page itself counts: each new toast's messages, and each later
# rise of its count.
COUNT_TOASTS = """
window.__toasts = {shown: 0, texts: []};
const counts = new WeakMap();
new MutationObserver(() => document.querySelectorAll('[data-testid="toast-body"]').forEach(t => {
    const c = t.querySelector('.toast-count');
    const n = c ? parseInt(c.textContent.replace(/[^0-9]/g, '')) : 1;
    const before = counts.get(t) || 0;
    if (n > before) {
        window.__toasts.shown += n - before;
        window.__toasts.texts.push(t.innerText);
        counts.set(t, n);
    }
})).observe(document, {childList: true, subtree: true, characterData: true});
"""


def reset_toasts(page) -> None:
    """Count toasts from now on."""
    page.evaluate("() => { window.__toasts.shown = 0; window.__toasts.texts = []; }")


def recorded_toasts(page) -> tuple[int, list[str]]:
    """(messages shown in toasts since the page loaded or reset_toasts, the toasts' texts as they appeared)."""
    seen = page.evaluate("() => window.__toasts")
    return seen["shown"], seen["texts"]
