"""What the See why sub-tabs share: run choices, a key's entry and labels, validation images.

Validation thumbnails (galleries) come first from the run folder itself: `see_why/` holds the
validation images those galleries show (misclassified ones, most confidently wrong first, as
small PNGs; docs/run-directory.md), so they work on a Space and from a Hub repo. Other images
(a correct cell of the confusion matrix) are read from the dataset in `data_dir` (the app's
--data-dir, the same default as training's: ./data); without either, the galleries list them.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from models.artifact import GALLERY_DIR
from models.jsonfile import run_file, try_read_json
from models.predict import ImageInputError, decode_image
from models.tasks import BASELINE, RANDOM_ERASING
from ui import inputs
from ui import explain_handlers as h
from ui.catalog import Catalog, ModelEntry, ModelUnavailable, train_command
from ui.common import user_error
from ui.val_images import ValidationImages

CATSDOGS = "catsdogs"
DEFAULT_DATA_DIR = Path("data")   # training's --data-dir default, and the app's


def default_data_dir() -> Path:
    return DEFAULT_DATA_DIR


class RunImages:
    """A run's own gallery images (`see_why/index.json` + PNGs), then the dataset for the rest."""

    def __init__(self, root: Path | None, dataset: ValidationImages):
        self.dataset = dataset
        self.files: dict[int, Path] = {}
        try:
            for row in try_read_json(root, f"{GALLERY_DIR}/index.json")["images"]:
                path = run_file(root, f"{GALLERY_DIR}/{Path(str(row['file'])).name}")
                if path is not None:
                    self.files[int(row["index"])] = path
        except (ValueError, TypeError, KeyError, AttributeError):
            self.files = {}

    @property
    def error(self) -> str | None:
        return self.dataset.error if not self.files or not self.dataset.available else None

    def get(self, index: int) -> Image.Image | None:
        path = self.files.get(int(index))
        if path is not None:
            try:
                return decode_image(path)
            except ImageInputError:
                pass
        return self.dataset.get(index)


class Images:
    """Validation images for a run's galleries: its own see_why/ images, else one ValidationImages
    per task from the data folder, opened on first use."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._by_task = {}

    def __call__(self, task, labels=("cat", "dog"), root: Path | None = None):
        if task not in self._by_task:
            self._by_task[task] = ValidationImages(task, self.data_dir, labels)
        return RunImages(root, self._by_task[task]) if root is not None else self._by_task[task]


def no_model_message() -> str:
    """One sentence for "no cats vs dogs model at all", with both training commands."""
    return (f"No cats vs dogs model is available. To train them, run: {train_command(CATSDOGS, BASELINE)} "
            f"(baseline) and {train_command(CATSDOGS, RANDOM_ERASING)} (Random Erasing).")


NO_RUNS = ("⚠️ No trained run yet, so there is nothing to show here. Train one, e.g. "
           f"`{train_command('cifar10', BASELINE)}`; its files then appear here.")


def run_choices(catalog: Catalog, task: str | None = None) -> list[tuple[str, str]]:
    """(label, key) of every run whose files can be read, optionally of one task."""
    return [(e.label, e.key) for e in catalog.with_files() if task is None or e.task == task]


def first_run(catalog: Catalog, task: str | None = None) -> str | None:
    """The run a See-why list starts with: the task's default model, else the first listed."""
    if task is not None and catalog.default_key(task, BASELINE):
        return catalog.default_key(task, BASELINE)
    runs = run_choices(catalog, task)
    return runs[0][1] if runs else None


def nothing_chosen(key, outputs: int):
    """When the page has no run to show (none trained yet, so its list is empty): `outputs`
    gr.skip()s, leaving the panel as built (its notice says why and what to do) instead of an
    error on every page load; None otherwise. An API call without a run still gets the error."""
    if inputs.from_browser() and inputs.run_key(key) is None:
        return tuple(gr.skip() for _ in range(outputs))
    return None


def entry_of(catalog: Catalog, key: str | None) -> ModelEntry:
    key = inputs.required_run_key(key)
    try:
        return catalog.entry(key)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


def model_entry(catalog: Catalog, key: str | None, task: str | None = None, variant: str = BASELINE) -> ModelEntry:
    """The loaded entry of `key`; with no key, the default model of `task` and `variant`."""
    key = inputs.run_key(key)
    if not key and task is None:
        raise user_error("model_run is missing: choose a model run")
    try:
        if key:
            entry = catalog.entry(key)
            task, variant = entry.task, entry.variant
        return catalog.get(key, task, variant)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


def labels_of(catalog: Catalog, key: str | None) -> list[str]:
    """The class names of a run: its loaded config, else its metrics.json."""
    entry = entry_of(catalog, key)
    if entry.loaded is not None:
        return list(entry.loaded.config.labels)
    metrics = try_read_json(entry.root, "metrics.json") or {}
    return [str(label) for label in metrics.get("labels") or []]
