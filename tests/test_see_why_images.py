"""A run folder carries the validation images its See why galleries show (see_why/), so the galleries
work without the dataset (a Space, a Hub repo): the misclassified images, and per class a few correctly
classified ones, so every confusion cell has thumbnails (issue 21)."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from training.gallery import CORRECT_PER_CLASS, MAX_LARGE_IMAGES, THUMBNAIL, gallery_rows, write_gallery
from ui.why import errors


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


def test_wrong_images_most_confidently_wrong_first_then_the_least_confident_correct_per_class(tmp_path):
    record = make_record(n=60, classes=3)
    labels, predicted = record["labels"], record["predicted"]
    wrong_rows = [i for i in range(60) if labels[i] != predicted[i]]
    # P(true) grows with the row number, so the loss falls: the expected order is by row.
    wrong, correct = gallery_rows(record)
    assert wrong == wrong_rows
    for c in range(3):
        rows = [i for i in range(60) if labels[i] == predicted[i] == c]
        assert [r for r in correct if labels[r] == c] == rows[:CORRECT_PER_CLASS]   # lowest P(true) first
    entries = write_gallery(tmp_path, record, digit)
    assert [e["index"] for e in entries] == [record["indices"][r] for r in wrong + correct]
    index = json.loads((tmp_path / "see_why" / "index.json").read_text())
    assert index["images"] == entries and "least confident" in index["rule"]
    first = Image.open(tmp_path / "see_why" / entries[0]["file"])
    assert first.size == (32, 32) and np.array_equal(np.asarray(first), digit(entries[0]["index"])[0])


def test_large_images_are_shrunk_and_fewer(tmp_path):
    record = make_record(n=3 * (MAX_LARGE_IMAGES + 5), classes=2)
    entries = write_gallery(tmp_path, record, lambda i: np.full((3, 256, 200), i % 255, np.uint8))
    wrong = [e for e in entries if e["label"] != e["predicted"]]
    assert len(wrong) == MAX_LARGE_IMAGES and len(entries) == MAX_LARGE_IMAGES + 2 * CORRECT_PER_CLASS
    assert max(Image.open(tmp_path / "see_why" / entries[0]["file"]).size) == THUMBNAIL


def test_every_cell_and_the_top_losses_show_the_run_images_alone(tmp_path):
    record = make_record()
    (tmp_path / "predictions.json").write_text(json.dumps(record))
    write_gallery(tmp_path, record, digit)
    labels = [str(i) for i in range(10)]
    items, table, note = errors.top_losses_view(tmp_path, labels, k=4)
    assert len(items) == 4 and "4 with the image" in note
    for row in range(20):                                  # each image, right or wrong, in its own cell
        t, p, index = record["labels"][row], record["predicted"][row], record["indices"][row]
        items, text = errors.cell_gallery(tmp_path, t, p, labels)
        shown = {int(caption.split("#")[1].split(" ")[0]) for _, caption in items}
        assert index in shown, (row, text)
        img = next(img for img, caption in items if caption.startswith(f"#{index} "))
        assert np.array_equal(np.asarray(img.convert("L").resize((32, 32), Image.NEAREST)), digit(index)[0])
