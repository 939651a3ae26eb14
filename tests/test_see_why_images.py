"""A run folder carries the validation images its See why galleries show (see_why/), so the galleries
work without the dataset (a Space, a Hub repo); other images still come from --data-dir."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from training.gallery import MAX_LARGE_IMAGES, THUMBNAIL, gallery_rows, write_gallery
from ui import explain_handlers as h
from ui.val_images import ValidationImages
from ui.why.adapters import Images, RunImages


def make_record(n=20, classes=10, seed=0):
    """predictions.json-like facts: every third image wrong, with known losses."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    predicted = labels.copy()
    wrong = np.arange(0, n, 3)
    predicted[wrong] = (labels[wrong] + 1) % classes
    probs = np.full((n, classes), 0.01)
    p_true = np.linspace(0.05, 0.6, n)               # row i: P(true) grows with i
    probs[np.arange(n), labels] = p_true
    probs[wrong, predicted[wrong]] = 0.9
    probs /= probs.sum(1, keepdims=True)
    indices = (np.arange(n) * 7 + 3).tolist()        # positions in the full split
    return {"split": "test", "indices": indices, "labels": labels.tolist(), "predicted": predicted.tolist(),
            "probabilities": probs.tolist()}


def digit(index: int) -> np.ndarray:
    img = np.zeros((1, 32, 32), np.uint8)
    img[0, index % 32, :] = 255                       # a row that identifies the image
    return img


def test_the_misclassified_images_are_kept_most_confidently_wrong_first(tmp_path):
    record = make_record()
    wrong_rows = [i for i in range(20) if record["labels"][i] != record["predicted"][i]]
    # P(true) grows with the row number, so the loss falls: the expected order is by row.
    assert gallery_rows(record) == wrong_rows
    entries = write_gallery(tmp_path, record, digit)
    assert [e["index"] for e in entries] == [record["indices"][r] for r in wrong_rows]
    index = json.loads((tmp_path / "see_why" / "index.json").read_text())
    assert index["images"] == entries
    first = Image.open(tmp_path / "see_why" / entries[0]["file"])
    assert first.size == (32, 32) and np.array_equal(np.asarray(first), digit(entries[0]["index"])[0])


def test_large_images_are_shrunk_and_fewer(tmp_path):
    record = make_record(n=3 * (MAX_LARGE_IMAGES + 5), classes=2)
    entries = write_gallery(tmp_path, record, lambda i: np.full((3, 256, 200), i % 255, np.uint8))
    assert len(entries) == MAX_LARGE_IMAGES
    assert max(Image.open(tmp_path / "see_why" / entries[0]["file"]).size) == THUMBNAIL


def test_the_galleries_show_the_run_images_without_the_dataset(tmp_path):
    record = make_record()
    (tmp_path / "predictions.json").write_text(json.dumps(record))
    write_gallery(tmp_path, record, digit)
    images = Images(tmp_path / "no-data")("mnist", [str(i) for i in range(10)], tmp_path)
    assert isinstance(images, RunImages)
    items, table, note = h.top_losses_view(tmp_path, [str(i) for i in range(10)], images, k=4)
    assert len(items) == 4 and "No thumbnails" not in note
    # A correct image is not in the run folder: without the dataset it is listed, with the reason.
    correct = next(i for i in range(20) if record["labels"][i] == record["predicted"][i])
    assert images.get(record["indices"][correct]) is None and "no data folder" in images.error


def test_other_images_still_come_from_the_data_folder(tmp_path, mnist_dir):
    record = make_record()
    write_gallery(tmp_path, record, digit)
    images = RunImages(tmp_path, ValidationImages("mnist", mnist_dir))
    from_run = images.get(record["indices"][0])
    assert np.array_equal(np.asarray(from_run), digit(record["indices"][0])[0])
    assert images.get(1) is not None and images.get(1).size == (28, 28)   # the real-format MNIST file

