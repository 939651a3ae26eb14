"""The on-disk layout of an image-folder dataset (cats vs dogs), read by training and the app.

    DATA/train/<label>/*.jpg     training split
    DATA/val/<label>/*.jpg       validation split

A label's folder may be spelt as the label, Capitalised or UPPER (cat, Cat, CAT). Files are
taken in label order, each folder sorted by name, so a position in the split is the same
image for training (predictions.json `indices`) and for the app's galleries. Without these
folders, the Oxford-IIIT Pet dataset (torchvision, binary-category) in DATA is used.
"""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
SPLIT_FOLDERS = {True: "train", False: "val"}           # train? -> folder
OXFORD_SPLITS = {True: "trainval", False: "test"}       # train? -> OxfordIIITPet split


def class_folder(root: Path, name: str) -> Path | None:
    for candidate in (name, name.capitalize(), name.upper()):
        if (root / candidate).is_dir():
            return root / candidate
    return None


def image_folder_files(root: Path, labels) -> tuple[list[Path], list[int]]:
    """Files of an image-folder split: root/<label>/* for each label, and their class ids."""
    files, targets = [], []
    for label_id, label in enumerate(labels):
        folder = class_folder(root, label)
        if folder is None:
            raise FileNotFoundError(f"{root}: no '{label}' folder (expected {root}/{label}/*.jpg)")
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        targets += [label_id] * len(found)
    return files, targets


def split_files(data_dir: Path, labels, *, train: bool, download: bool = False) -> tuple[list[Path], list[int], str]:
    """(files, class ids, split name) of one split: the image folder when present, else Oxford-IIIT Pet."""
    data_dir = Path(data_dir)
    folder = data_dir / SPLIT_FOLDERS[train]
    if folder.is_dir():
        files, targets = image_folder_files(folder, labels)
        return files, targets, SPLIT_FOLDERS[train]
    from torchvision.datasets import OxfordIIITPet
    ds = OxfordIIITPet(str(data_dir), split=OXFORD_SPLITS[train], target_types="binary-category", download=download)
    # The dataset object exposes file paths and binary labels (0 = Cat, 1 = Dog) as
    # attributes; reading them lets training decode each file once into its cache.
    return [Path(p) for p in ds._images], list(ds._bin_labels), OXFORD_SPLITS[train]
