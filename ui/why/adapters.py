"""What the See why sub-tabs share: a run list with its notice, a key's entry and labels, a run's
predictions and its gallery images.

The galleries show only the run's own images, `see_why/` (training/gallery.py): a run folder, a
Space and a Hub repo show the same thumbnails, and no dataset is read.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from analysis.stats import load_predictions
from models.artifact import GALLERY_DIR
from models.jsonfile import run_file, try_read_json
from models.predict import ImageInputError, decode_image
from models.tasks import RANDOM_ERASING, TASKS
from ui import inputs, live
from ui.catalog import Catalog, ModelUnavailable
from ui.common import VIEW_SIZE, user_error

NO_RUNS = ("⚠️ No trained run yet, so there is nothing to show here. Train one, e.g. "
           f"`{next(iter(TASKS.values())).train_command()}`; its files then appear here.")
SIDE_BY_SIDE = [name for name, task in TASKS.items() if RANDOM_ERASING in task.variants]


def first_key(entries) -> str | None:
    """The key of the first default model among `entries`, else of the first entry."""
    return next((e.key for e in entries if e.default), next((e.key for e in entries), None))


def run_picker(catalog: Catalog, keep=lambda entry: True, notice: str = NO_RUNS, notice_id=None,
               default=first_key, **kwargs) -> gr.Dropdown:
    """A notice while no run qualifies (`keep(entry)`), and a dropdown of the runs whose files can be
    read, starting on `default(those runs)` (its `.value`); both follow the catalog when it reloads.
    Every tab's run list is made here."""
    def entries():
        return [e for e in catalog.with_files() if keep(e)]

    live.markdown(catalog, lambda: "" if entries() else notice, hide_empty=True, elem_classes=["notice"],
                  elem_id=notice_id)
    return live.dropdown(catalog, lambda: [(e.label, e.key) for e in entries()], lambda: default(entries()),
                         **kwargs)


def nothing_chosen(key, outputs: int):
    """When the page has no run to show (none trained yet, so its list is empty): `outputs`
    gr.skip()s, leaving the panel as built (its notice says why and what to do) instead of an
    error on every page load; None otherwise. An API call without a run still gets the error."""
    if inputs.from_browser() and inputs.run_key(key) is None:
        return tuple(gr.skip() for _ in range(outputs))
    return None


def entry_of(catalog: Catalog, key):
    key = inputs.required_run_key(key)
    try:
        return catalog.entry(key)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


def labels_of(entry) -> list[str]:
    """The class names of a run: its loaded config, else its metrics.json."""
    if entry.loaded is not None:
        return list(entry.loaded.config.labels)
    return [str(label) for label in (try_read_json(entry.root, "metrics.json") or {}).get("labels") or []]


def read_predictions(root):
    path = run_file(root, "predictions.json") if root is not None else None
    try:
        return load_predictions(path) if path is not None else None
    except (OSError, ValueError):
        return None


def no_predictions(root) -> str:
    # The run as <task>/<run>, its place in the runs folder: never a server path.
    run = f"runs/{Path(root).parent.name}/{Path(root).name}" if root else "RUN_DIR"
    return ("This run has no usable predictions.json (per-image predictions); write it with "
            f"`python -m training.evaluate {run} --predictions`.")


def run_gallery(root, captions: list[tuple[int, str]], limit: int | None = None) -> list:
    """(thumbnail, caption) per (position in the split, caption) whose image the run kept (its own PNG in
    see_why/, see_why/index.json), at most `limit`."""
    files = {}
    try:
        for row in (try_read_json(root, f"{GALLERY_DIR}/index.json") or {}).get("images", []):
            if (path := run_file(root, f"{GALLERY_DIR}/{Path(str(row['file'])).name}")) is not None:
                files[int(row["index"])] = path
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
    kept = [(files[index], caption) for index, caption in captions if index in files][:limit]
    return [(img, caption) for path, caption in kept if (img := thumbnail(path)) is not None]


def thumbnail(path: Path | None, size: int | None = 128) -> Image.Image | None:
    """The image at `path`, enlarged to `size` when smaller (None: as it is); None when absent or unreadable."""
    if path is None:
        return None
    try:
        img = decode_image(path)
    except ImageInputError:
        return None
    return enlarge(img, size) if size else img


def enlarge(img: Image.Image, size: int = VIEW_SIZE) -> Image.Image:
    """`img` upscaled to size x size with nearest neighbour (its pixels stay sharp) when smaller."""
    return img.resize((size, size), Image.NEAREST) if img.width < size else img
