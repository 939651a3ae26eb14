"""Screenshots of every tab of the app, for the README: assets/screenshots/<tab>.png.

    python scripts/make_screenshots.py [--runs runs] [--data-dir ../shared/data] [--out assets/screenshots]

Launches the app on a free local port with the runs found under --runs, opens it in Chromium
(Playwright; Debian's /usr/bin/chromium when present), uses each tab the way a visitor would
(uploads a sample, draws a digit and asks Grad-CAM why, opens a confusion-matrix cell, ...),
and saves one small palette PNG per tab. --data-dir is where the validation images are (the
confusion-matrix gallery's thumbnails). Needs
`apt-get install -y chromium && pip install playwright`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from io import BytesIO
from pathlib import Path

from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REPO = ASSETS.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def save_small(png: bytes, path: Path, width: int) -> None:
    """Downscale to `width` and quantise to a 128-colour palette: small files for the README."""
    img = Image.open(BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def draw_digit(page) -> None:
    sketch = page.locator("#mnist-sketch")
    sketch.get_by_role("button", name="Brush").click()
    box = sketch.locator("canvas").first.bounding_box()
    # A "7": a bar across the top, then a stroke down to the lower left.
    points = [(0.35, 0.22), (0.65, 0.22), (0.45, 0.8)]
    page.mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for k in range(1, 16):
            t = k / 15
            page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * t),
                            box["y"] + box["height"] * (y0 + (y1 - y0) * t))
    page.mouse.up()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=REPO / "runs", help="runs folder (default runs/)")
    p.add_argument("--out", type=Path, default=ASSETS / "screenshots", help="output folder")
    p.add_argument("--data-dir", type=Path, default=None, help="datasets folder, for the galleries' thumbnails")
    p.add_argument("--width", type=int, default=1000, help="width of the saved PNGs in pixels")
    args = p.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sys.path.insert(0, str(REPO))
    import app
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.build_demo(args.runs, data_dir=args.data_dir)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                            **app.launch_options())
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.set_default_timeout(60_000)
            page.goto(url)
            page.wait_for_selector("#app-title")

            def tab(name: str):
                page.get_by_role("tab", name=name).click()
                page.wait_for_timeout(800)

            def shot(name: str):
                page.wait_for_timeout(1500)  # plots and images settle
                save_small(page.screenshot(full_page=True), args.out / f"{name}.png", args.width)

            has = {t: demo.catalog.default_key(t) is not None for t in ("cifar10", "mnist", "catsdogs")}
            tab("CIFAR-10")
            if has["cifar10"]:  # without a model the tab shows its training command instead
                page.locator("#cifar10-input input[type=file]").set_input_files(str(ASSETS / "sample_boat.png"))
                page.locator("#cifar10-label").filter(has_text="%").wait_for()
            shot("cifar10")
            tab("MNIST")
            if has["mnist"]:
                draw_digit(page)
                page.locator("#mnist-label").filter(has_text="%").wait_for()
                page.get_by_text("Why? Grad-CAM of your digit").click()      # Grad-CAM of the drawing
                page.get_by_role("button", name="Explain", exact=True).click()
                page.locator(".gradcam-caption").filter(has_text="Grad-CAM for").first.wait_for()
            shot("mnist")
            tab("Cats vs Dogs")
            if has["catsdogs"]:
                page.locator("#catsdogs-input input[type=file]").set_input_files(str(ASSETS / "cat_drawing.png"))
                page.locator("#catsdogs-baseline").filter(has_text="%").wait_for()
            shot("catsdogs")
            tab("Augmentation")
            page.get_by_role("button", name="Augment").click()
            page.locator("#augment-gallery img").first.wait_for()
            shot("augmentation")
            for name, file in (("Architecture", "architecture"), ("Training curves", "curves")):
                tab(name)
                shot(file)
            tab("See why")
            page.get_by_role("tab", name="Confusion matrix").click()
            if has["mnist"]:  # the heat map of the MNIST run, and the images of its largest error
                key = demo.catalog.default_key("mnist")
                page.locator("#confusion-run input").click()
                page.get_by_role("option", name=demo.catalog.entry(key).label).click()
                cells = page.locator("#confusion-heatmap tbody tr")
                cells.first.get_by_text("·").first.wait_for()
                page.wait_for_timeout(800)
                counts = [[int(t.split(" · ")[0]) for t in cells.nth(r).locator("td").all_inner_texts()[1:]]
                          for r in range(cells.count())]
                worst = max(((r, c) for r in range(len(counts)) for c in range(len(counts)) if r != c),
                            key=lambda rc: counts[rc[0]][rc[1]])
                cells.nth(worst[0]).locator("td").nth(worst[1] + 1).click()
                page.locator("#confusion-cell-text").filter(has_text="image(s)").wait_for()
            shot("why")
            tab("Model cards")
            shot("cards")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
