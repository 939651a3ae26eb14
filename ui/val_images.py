"""Validation images by index, for the galleries (confusion-matrix cell, top losses).

predictions.json stores, per image, its position in the full validation split (`indices`),
not the pixels. This reader opens that split from a local data folder (the `--data-dir`
training used; nothing is downloaded) and returns the image at a position, following the
same rules as `training.data` (tests/test_explain_handlers.py checks that they agree):

- cifar10: torchvision CIFAR10(train=False), the test batch;
- mnist: torchvision MNIST(train=False), 28x28 digits;
- catsdogs: models/imagefolder.py, as training reads it: DATA/val/<cat|Cat|CAT>/* then dog,
  each sorted by name, else the Oxford-IIIT Pet test split.

Without the data the galleries still list the images (index, true and predicted class,
confidence); only the thumbnails are missing, and the app says where it looked.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from models.predict import ImageInputError, decode_image
from ui.catalog import public_text

class ValidationImages:
    """Images of one task's validation split, opened lazily from `data_dir` (never downloaded)."""

    def __init__(self, task: str, data_dir: str | os.PathLike | None, labels=("cat", "dog")):
        self.task = task
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.labels = tuple(labels)
        self._lock = threading.Lock()
        self._source = None          # ("array", uint8 array) | ("files", [Path]) once opened
        self.error: str | None = None

    def _open(self):
        if self._source is not None or self.error is not None:
            return
        if self.data_dir is None or not self.data_dir.is_dir():
            self.error = public_text(f"no data folder at {self.data_dir}") if self.data_dir else "no data folder given"
            return
        try:
            if self.task == "cifar10":
                from torchvision.datasets import CIFAR10
                ds = CIFAR10(str(self.data_dir), train=False, download=False)
                self._source = ("array", np.asarray(ds.data))                       # (N, 32, 32, 3)
            elif self.task == "mnist":
                from torchvision.datasets import MNIST
                ds = MNIST(str(self.data_dir), train=False, download=False)
                self._source = ("array", ds.data.numpy())                           # (N, 28, 28)
            elif self.task == "catsdogs":    # the image folder, else Oxford-IIIT Pet (models/imagefolder.py)
                folders = {p.name.casefold(): p for p in (self.data_dir / "val").iterdir() if p.is_dir()}
                self._source = ("files", [f for label in self.labels for f in sorted(
                    folders[label.casefold()].iterdir()) if f.suffix.lower() in {".jpg", ".jpeg", ".png"}])
            else:
                self.error = f"no validation images known for task {self.task!r}"
        except (RuntimeError, OSError, ValueError) as e:    # torchvision: "Dataset not found ..."
            self.error = public_text(f"the {self.task} validation split is not in {self.data_dir} "
                                     f"({' '.join(str(e).split())})")

    @property
    def available(self) -> bool:
        with self._lock:
            self._open()
        return self._source is not None

    def __len__(self) -> int:
        return len(self._source[1]) if self.available else 0

    def get(self, index: int) -> Image.Image | None:
        """The image at `index` of the full validation split; None if unavailable or unreadable."""
        if not self.available:
            return None
        kind, data = self._source
        index = int(index)
        if not 0 <= index < len(data):
            return None
        if kind == "array":
            return Image.fromarray(np.ascontiguousarray(data[index]))
        try:
            return decode_image(data[index])
        except ImageInputError:
            return None
