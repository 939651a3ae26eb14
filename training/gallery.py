"""The validation images the app's See why galleries show, saved into the run folder (`see_why/`),
so the galleries work wherever the run folder is (a Space, a Hub repo), with no dataset: which
images, and index.json, in docs/run-directory.md.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2.functional import to_pil_image

from models.artifact import GALLERY_DIR
from models.atomic import atomic_write, atomic_write_json

MAX_IMAGES = 300          # misclassified images kept, most confidently wrong first
MAX_LARGE_IMAGES = 60     # the same, for images larger than THUMBNAIL
CORRECT_PER_CLASS = 8     # correctly classified images kept per class, least confident first
THUMBNAIL = 128           # long side in pixels of a kept large image (the galleries show 128 px)
RULE = (f"misclassified, highest loss first; then per class the {CORRECT_PER_CLASS} least confident "
        "correctly classified")


def gallery_rows(record: dict) -> tuple[list[int], list[int]]:
    """Rows of predictions.json (`record`): (misclassified, highest loss -log P(true) first;
    correct, per class the CORRECT_PER_CLASS with the lowest P(true))."""
    probs = np.asarray(record["probabilities"], dtype=np.float64)
    if probs.size == 0:
        return [], []
    labels = np.asarray(record["labels"], dtype=np.int64)
    p_true = probs[np.arange(len(labels)), labels]
    order = np.argsort(p_true, kind="stable")            # lowest P(true) = highest loss first
    right = np.asarray(record["predicted"], dtype=np.int64)[order] == labels[order]
    correct = [r for c in range(probs.shape[1]) for r in order[right & (labels[order] == c)][:CORRECT_PER_CLASS]]
    return order[~right].tolist(), [int(r) for r in correct]


def write_gallery(run_dir: Path, record: dict, images_by_index) -> list[dict]:
    """Save the gallery images; `images_by_index(index)` gives the uint8 image (C, H, W) at that
    position of the full validation split. Returns the rows of see_why/index.json."""
    folder = Path(run_dir) / GALLERY_DIR
    if folder.exists():   # a resumed or re-finished run: only this evaluation's images (atomic_write makes it anew)
        shutil.rmtree(folder)
    wrong, correct = gallery_rows(record)
    entries = []
    for rows, bounded in ((wrong, True), (correct, False)):
        kept = 0
        for row in rows:
            index = int(record["indices"][row])
            img = to_pil_image(torch.as_tensor(images_by_index(index)))
            large = max(img.size) > THUMBNAIL
            if bounded and kept >= (MAX_LARGE_IMAGES if large else MAX_IMAGES):
                break
            if large:
                img.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
            name = f"{index:06d}.png"
            atomic_write(folder / name, lambda p, im=img: im.save(p, format="PNG", optimize=True))
            entries.append({"index": index, "file": name, "label": int(record["labels"][row]),
                            "predicted": int(record["predicted"][row])})
            kept += 1
    atomic_write_json(folder / "index.json", {"split": record.get("split"), "rule": RULE, "images": entries})
    return entries
