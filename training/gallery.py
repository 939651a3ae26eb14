"""The validation images the app's See why galleries show, saved into the run folder.

The confusion-matrix gallery (an off-diagonal cell) and the top-losses gallery show misclassified
validation images; predictions.json only names them by position in the split. So a run keeps
those images as small PNGs in `see_why/` (listed in `see_why/index.json`), and the galleries
work where the dataset is not (a Space, a Hub repo): the most confidently wrong first, at most
MAX_IMAGES of them, and large images (cats vs dogs) shrunk to THUMBNAIL pixels on the long side.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from models.artifact import GALLERY_DIR
from models.atomic import atomic_write, atomic_write_json

MAX_IMAGES = 300          # the misclassified images kept, most confidently wrong first
MAX_LARGE_IMAGES = 60     # the same, for images larger than THUMBNAIL
THUMBNAIL = 128           # long side in pixels of a kept large image (the galleries show 128 px)


def gallery_rows(record: dict) -> list[int]:
    """Rows of predictions.json (`record`) that are misclassified, highest loss -log P(true) first."""
    probs = np.asarray(record["probabilities"], dtype=np.float64)
    if probs.size == 0:
        return []
    labels = np.asarray(record["labels"], dtype=np.int64)
    predicted = np.asarray(record["predicted"], dtype=np.int64)
    p_true = probs[np.arange(len(labels)), labels]
    loss = -np.log(np.clip(p_true, 1e-12, 1.0))
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-loss[wrong], kind="stable")].tolist()


def write_gallery(run_dir: Path, record: dict, images_by_index) -> list[dict]:
    """Save the gallery images; `images_by_index(index)` gives the uint8 image (C, H, W) at that
    position of the full validation split. Returns the rows of see_why/index.json."""
    folder = Path(run_dir) / GALLERY_DIR
    if folder.exists():
        shutil.rmtree(folder)     # a resumed or re-finished run: only this evaluation's images
    folder.mkdir(parents=True)
    rows = gallery_rows(record)
    entries = []
    for row in rows:
        index = int(record["indices"][row])
        img = _to_pil(images_by_index(index))
        large = max(img.size) > THUMBNAIL
        if len(entries) >= (MAX_LARGE_IMAGES if large else MAX_IMAGES):
            break
        if large:
            img.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
        name = f"{index:06d}.png"
        atomic_write(folder / name, lambda p, im=img: im.save(p, format="PNG", optimize=True))
        entries.append({"index": index, "file": name, "label": int(record["labels"][row]),
                        "predicted": int(record["predicted"][row])})
    atomic_write_json(folder / "index.json", {"split": record.get("split"), "rule": "misclassified, highest "
                      "loss first", "images": entries})
    return entries


def _to_pil(image) -> Image.Image:
    arr = np.asarray(image.cpu() if hasattr(image, "cpu") else image, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(arr))
