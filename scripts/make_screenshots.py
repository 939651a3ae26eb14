"""Screenshots of every tab of the app, for the README: assets/screenshots/<tab>.png.

    python scripts/make_screenshots.py [--runs runs] [--data-dir data] [--out assets/screenshots]

Launches the app on a free local port with the runs found under --runs, opens it in Chromium
(Playwright; Debian's /usr/bin/chromium when present), uses each tab the way a visitor would
(uploads a sample, draws a digit and asks Grad-CAM why, opens the confusion heat map's largest
error, ...), and saves one small palette PNG per tab. --data-dir is where the datasets are (the
galleries' thumbnails of correct cells). The Train tab is shown mid-run: a second app on a
temporary runs folder starts a short real MNIST run (--data-dir/MNIST, --train-images per epoch)
from the tab, is photographed during its third epoch, then stops it and is removed. Needs
`apt-get install -y chromium && pip install playwright`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from io import BytesIO
from pathlib import Path

from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REPO = ASSETS.parent
sys.path.insert(0, str(REPO))   # run as `python scripts/make_screenshots.py`

from tests.browser_helpers import SEVEN, cell, choose, chromium, draw, launch, open_page, open_tab  # noqa: E402


def save_small(png: bytes, path: Path, width: int) -> None:
    """Downscale to `width` and quantise to a 128-colour palette: small files for the README."""
    img = Image.open(BytesIO(png)).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def open_app(browser, url: str, height: int = 900):
    page = open_page(browser, url, height=height)   # loaded: lists and opening tab final
    page.set_default_timeout(180_000)
    return page


def settle(page) -> None:
    """Let plots finish drawing (Vega animates its marks) before a picture is taken."""
    page.wait_for_timeout(1500)


def tabs_shots(browser, demo, url: str, shot) -> None:
    """One picture per tab of the app on the user's runs."""
    page = open_app(browser, url)
    tab = lambda name: open_tab(page, name)  # noqa: E731
    has = {t: demo.catalog.default_key(t) is not None for t in ("cifar10", "mnist", "catsdogs")}
    tab("CIFAR-10")
    if has["cifar10"]:  # without a model the tab shows its training command instead
        page.locator("#cifar10-input input[type=file]").set_input_files(str(ASSETS / "sample_boat.png"))
        page.locator("#cifar10-label").filter(has_text="%").wait_for()
    shot(page, "cifar10")
    tab("MNIST")
    if has["mnist"]:
        page.locator("#mnist-sketch button[aria-label=Brush].highlight").wait_for()   # the page picks the brush
        draw(page, SEVEN)
        page.locator("#mnist-label").filter(has_text="%").wait_for()
        page.get_by_text("Why? Grad-CAM: where the model looked (at the drawing").click()   # of the drawing
        page.get_by_role("button", name="Explain", exact=True).click()
        page.locator(".gradcam-caption").filter(has_text="Grad-CAM for").first.wait_for()
    shot(page, "mnist")
    tab("Cats vs Dogs")
    if has["catsdogs"]:
        page.locator("#catsdogs-input input[type=file]").set_input_files(str(ASSETS / "cat_drawing.png"))
        page.locator("#catsdogs-label-baseline").filter(has_text="%").wait_for()
    shot(page, "catsdogs")
    tab("Augmentation")
    page.get_by_role("button", name="Augment").click()
    page.locator("#augment-gallery img").first.wait_for()
    shot(page, "augmentation")
    for name, file in (("Architecture", "architecture"), ("Training curves", "curves")):
        tab(name)
        shot(page, file)
    tab("See why")
    page.get_by_role("tab", name="Confusion matrix", exact=True).click()
    if has["mnist"]:  # the heat map of the MNIST run, and the images of its largest error
        entry = demo.catalog.entry(demo.catalog.default_key("mnist"))
        choose(page, "#confusion-run", entry.label)
        counts = json.loads((entry.root / "metrics.json").read_text())["confusion_matrix"]
        n = len(counts)
        row, col = max(((r, c) for r in range(n) for c in range(n) if r != c), key=lambda rc: counts[rc[0]][rc[1]])
        heat = lambda r, c: page.locator(cell("#confusion-heatmap", r, c + 1))  # noqa: E731
        heat(0, 0).filter(has_text=f"{counts[0][0]} ").wait_for()     # the chosen run's heat map is shown
        heat(row, col).click()
        page.locator("#confusion-cell-text").filter(has_text="image(s)").wait_for()
        if counts[row][col]:
            page.locator("#confusion-gallery img").first.wait_for()
    shot(page, "why")
    tab("Model cards")
    shot(page, "cards")
    page.close()


def train_shot(browser, data_dir: Path, images: int, shot) -> None:
    """The Train tab during a short real MNIST run started from the tab (its own app and runs folder)."""
    from playwright.sync_api import expect

    import app
    runs = Path(tempfile.mkdtemp(prefix="cnn-studio-train-shot-"))
    demo = app.build_demo(runs, data_dir=data_dir, training_off=None, train_device="cpu")
    try:
        page = open_app(browser, launch(demo), height=1000)
        page.get_by_role("tab", name="Train", exact=True).click()
        page.get_by_text("Advanced (blank: the preset's value").click()
        for field, value in (("Epochs", 3), ("Batch size", 128), ("Training images (subset)", images),
                             ("Validation images (subset)", 2000)):
            page.get_by_label(field, exact=True).fill(str(value))
            page.get_by_label(field, exact=True).press("Tab")
        expect(page.locator("#train-command textarea")).to_have_value(re.compile(f"--limit-train {images} "),
                                                                      timeout=120_000)
        page.locator("#train-start").click()
        # The third epoch under way: two points per curve, live figures, the log.
        page.locator("#train-progress").filter(has_text="epoch 3/3 · step").wait_for(timeout=900_000)
        page.locator("#train-progress").filter(has_text="images/s").wait_for()
        settle(page)
        shot(page, "train")
        page.locator("#train-stop").click()
        page.locator("#train-progress").filter(has_text="Stopped").wait_for()
        page.close()
    finally:
        demo.trainer.jobs.close()
        demo.close()
        shutil.rmtree(runs, ignore_errors=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=REPO / "runs", help="runs folder (default runs/)")
    p.add_argument("--out", type=Path, default=ASSETS / "screenshots", help="output folder")
    p.add_argument("--data-dir", type=Path, default=REPO / "data",
                   help="datasets folder (default data/): galleries' thumbnails, and the Train tab's MNIST run")
    p.add_argument("--train-images", type=int, default=1536,
                   help="training images per epoch of the Train tab's run (default 1536; 0: no Train tab picture)")
    p.add_argument("--width", type=int, default=1000, help="width of the saved PNGs in pixels")
    args = p.parse_args(argv)

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import app

    args.out.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str):
        settle(page)
        save_small(page.screenshot(full_page=True), args.out / f"{name}.png", args.width)

    demo = app.build_demo(args.runs, data_dir=args.data_dir)
    playwright, browser = chromium()
    try:
        tabs_shots(browser, demo, launch(demo), shot)
        if args.train_images and (args.data_dir / "MNIST" / "raw").is_dir():
            train_shot(browser, args.data_dir, args.train_images, shot)
        elif args.train_images:
            print(f"no MNIST in {args.data_dir}/MNIST/raw: no Train tab picture")
    finally:
        browser.close()
        playwright.stop()
        demo.close()


if __name__ == "__main__":
    main()
