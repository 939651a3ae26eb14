"""A task's data, read as its record says (models/tasks.py `Dataset.source`), served in augmented batches.

Readers:
- a torchvision dataset with `data` and `targets` arrays (MNIST, CIFAR10 and their kin): the
  whole split held as uint8 (N, C, S, S), resized once to the stored size;
- torchvision's OxfordIIITPet and an image folder (`DIR/<class>/*`, or `DIR/train/<class>/*` +
  `DIR/val/<class>/*`): image files, decoded when a batch needs them by the app's own decoder
  and preparation (`models.predict.decode_image` + `to_stored`), in DataLoader worker processes,
  so a folder of any size trains with bounded memory.
torchvision downloads what is missing into --data-dir on first use (and verifies it); files
already there are used offline. A cats-vs-dogs --data-dir holding an image folder is read as
one: the run then records "a local image folder", never the public dataset.

`Batches` is the one batch path of training and evaluation for both kinds of split.
"""
from __future__ import annotations

import inspect
import logging
import os
import shutil
import signal
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from models.predict import ImageInputError, decode_image, to_stored
from models.tasks import IMAGE_FOLDER_LAYOUT, LOCAL_FOLDER, Dataset, Task

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
VAL_FRACTION = 0.2       # of each class, for a folder without train/ and val/: a seeded split
MIN_IMAGES_PER_CLASS = 2


class DatasetError(Exception):
    """A dataset that cannot be read or fetched; one line naming the folder, what belongs there, what to do."""


class FileImages(torch.utils.data.Dataset):
    """Image files, each decoded when asked for into uint8 (C, S, S) at the stored size (None if unreadable)."""

    def __init__(self, files: list[Path], channels: int, size: int):
        self.files, self.channels, self.size = files, channels, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int]:
        try:
            return to_stored(decode_image(self.files[i], draft=self.size), self.channels, self.size), i
        except ImageInputError as e:
            log.warning("skipping unreadable image %s: %s", self.files[i], e)
            return None, i


@dataclass
class Split:
    name: str                           # "train" / "test" / "val" / "trainval"
    images: torch.Tensor | FileImages   # uint8 (N, C, S, S), or files decoded on demand
    labels: torch.Tensor                # int64 (N,)
    indices: torch.Tensor               # int64 (N,): position of each image in the full split
    skipped: int = 0                    # files left out (not images)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def image(self, i: int) -> torch.Tensor | None:
        """uint8 (C, S, S) of item i (None for a file that cannot be decoded)."""
        return self.images[i] if isinstance(self.images, torch.Tensor) else self.images[i][0]


@dataclass(frozen=True)
class Source:
    """What a run reads: the dataset (its record's, or a local image folder), labels, and how it split."""
    dataset: Dataset
    labels: tuple[str, ...]
    validation: str = ""                # how the validation images were chosen, when not by the dataset

    def facts(self) -> dict:
        """config.json's "dataset" (the counts are added by the run)."""
        d = self.dataset
        facts = {"name": d.name, "source": d.source, "hub_id": d.hub_id, "hub_config": d.hub_config,
                 "train_split": d.train_split, "val_split": d.val_split, "url": d.url or None}
        return {**facts, "validation": self.validation} if self.validation else facts


# --- what --data-dir holds --------------------------------------------------------------------

def _visible_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: unicodedata.normalize("NFC", p.name))


def _class_dir(root: Path, label: str) -> Path | None:
    """root/<label>, spelt in any case (cat, Cat, CAT)."""
    return next((p for p in _visible_dirs(root) if p.name.casefold() == label.casefold()), None) \
        if root.is_dir() else None


def _is_split_layout(data_dir: Path) -> bool:
    return (data_dir / "train").is_dir() or (data_dir / "val").is_dir()


def find_source(task: Task, data_dir: str | os.PathLike) -> Source:
    """The dataset a run of `task` reads from `data_dir`, checked before anything is read or downloaded."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir}: is a file, not a folder; {task.name} expects a folder "
                           f"holding {task.dataset.layout}")
    local = task.dataset.local or (task.labels and data_dir.is_dir() and (
        _is_split_layout(data_dir) or all(_class_dir(data_dir, label) for label in task.labels)))
    if not local:
        return Source(task.dataset, task.labels)
    if not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir}: no such folder; {task.name} expects {IMAGE_FOLDER_LAYOUT}")
    if _is_split_layout(data_dir):
        for split in ("train", "val"):
            if not (data_dir / split).is_dir():
                raise DatasetError(f"--data-dir {data_dir}: has {'val' if split == 'train' else 'train'}/ but no "
                                   f"{split}/; an image folder with splits needs both (train/<class>/, val/<class>/)")
        labels = task.labels or tuple(p.name for p in _visible_dirs(data_dir / "train"))
        validation = ""
    else:
        labels = task.labels or tuple(p.name for p in _visible_dirs(data_dir))
        validation = f"a seeded {VAL_FRACTION:.0%} of each class's images"
    if len(labels) < 2:
        raise DatasetError(f"--data-dir {data_dir}: found {len(labels)} class folder(s); a classifier needs at "
                           f"least two ({IMAGE_FOLDER_LAYOUT})")
    return Source(LOCAL_FOLDER, tuple(unicodedata.normalize("NFC", label) for label in labels), validation)


# --- readers ----------------------------------------------------------------------------------

def subset_indices(n: int, limit: int | None, seed: int) -> torch.Tensor:
    """A deterministic, seeded subset of `limit` positions out of `n`, in ascending order."""
    if limit is None or limit >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def load_split(task: Task, source: Source, data_dir: str | os.PathLike, *, train: bool, limit: int | None = None,
               seed: int = 0, download: bool = True) -> Split:
    """The training or validation split, as uint8 tensors or image files (a seeded subset with `limit`)."""
    data_dir = Path(data_dir)
    cfg = task.model_config(source.labels)
    if source.dataset.local:
        files, targets, name, skipped = _folder_split(data_dir, source, train, seed)
    else:
        files, targets, name, skipped = _torchvision_split(source.dataset, data_dir, train, download)
    # Different subset seeds for the two splits, so equal limits do not pick the same positions.
    idx = subset_indices(len(targets), limit, seed + (0 if train else 1))
    labels = torch.as_tensor(np.asarray(targets), dtype=torch.int64)[idx]
    if isinstance(files, torch.Tensor):
        images = files[idx]
        if images.shape[-1] != cfg.stored_size:
            images = TF.resize(images, [cfg.stored_size, cfg.stored_size], antialias=True)
        images = images.contiguous()
    else:
        images = FileImages([files[i] for i in idx.tolist()], cfg.in_channels, cfg.stored_size)
    if len(labels) == 0:
        raise DatasetError(f"{task.name}: the {name} split has no images in {data_dir}")
    return Split(name, images, labels, idx, skipped)


def _torchvision_split(dataset: Dataset, data_dir: Path, train: bool, download: bool):
    """(uint8 images (N, C, H, W) or files, targets, split name, 0) of a torchvision dataset."""
    import torchvision.datasets
    cls = getattr(torchvision.datasets, dataset.source.rsplit(".", 1)[-1])
    name = dataset.train_split if train else dataset.val_split
    which = {"train": train} if "train" in inspect.signature(cls).parameters else {"split": name}
    ds = _fetch(dataset, data_dir, lambda dl: cls(str(data_dir), download=dl, **which, **dataset.options), download)
    if hasattr(ds, "data") and hasattr(ds, "targets"):
        data = torch.as_tensor(np.asarray(ds.data))
        data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)     # (N, C, H, W)
        return data, list(ds.targets), name, 0
    # OxfordIIITPet keeps its file list and labels as attributes; reading them lets training
    # decode each file through the app's decoder.
    binary = dataset.options.get("target_types") == "binary-category"
    return [Path(p) for p in ds._images], list(ds._bin_labels if binary else ds._labels), name, 0


def _fetch(dataset: Dataset, data_dir: Path, make, download: bool):
    """`make(download)` builds the torchvision dataset; a failed download leaves nothing new behind.

    torchvision creates its folders and partial files before a download fails (offline, a proxy):
    whatever did not exist before the attempt is removed again, and the failure becomes one line
    that says what to put where when there is no network.
    """
    existed = set(data_dir.iterdir()) if data_dir.is_dir() else None
    top_missing = next(p for p in (data_dir, *data_dir.parents) if p.parent.exists())
    try:
        return make(download)
    except (OSError, RuntimeError) as e:
        new = [top_missing] if existed is None else set(data_dir.iterdir()) - existed
        for path in new:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        what = "and downloading it failed" if download else "and downloading is off"
        raise DatasetError(f"{dataset.name}: not found in {data_dir} {what} ({reason}); expected there: "
                           f"{dataset.layout}. Offline, copy those files into {data_dir} or point --data-dir at "
                           f"a folder that has them") from e


def _folder_files(folder: Path, labels: tuple[str, ...]) -> tuple[list[list[Path]], int]:
    """The image files of each label's folder (sorted by name), and how many other files were left out."""
    per_class, other = [], 0
    for label in labels:
        found = _class_dir(folder, label)
        if found is None:
            raise DatasetError(f"{folder}: no '{label}' folder (expected {folder}/{label}/ with images)")
        files = sorted(p for p in found.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        other += len(files) - len(images)
        per_class.append(images)
    return per_class, other


def _folder_split(data_dir: Path, source: Source, train: bool, seed: int):
    """(files, targets, split name, files left out) of an image folder: train/ or val/, or a seeded split."""
    name = "train" if train else "val"
    if not source.validation:
        per_class, other = _folder_files(data_dir / name, source.labels)
    else:
        per_class, other = _folder_files(data_dir, source.labels)
        for label, files in zip(source.labels, per_class):
            if len(files) < MIN_IMAGES_PER_CLASS:
                raise DatasetError(f"{data_dir / label}: {len(files)} image(s); each class needs at least "
                                   f"{MIN_IMAGES_PER_CLASS} (one to train on, one to validate)")
        per_class = [_seeded_part(files, seed, train) for files in per_class]
    files = [f for group in per_class for f in group]
    targets = [k for k, group in enumerate(per_class) for _ in group]
    return files, targets, name, other


def _seeded_part(files: list[Path], seed: int, train: bool) -> list[Path]:
    """The training or validation part of one class's files: a seeded VAL_FRACTION (at least one) validates."""
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(len(files) * VAL_FRACTION))
    chosen = sorted(order[n_val:] if train else order[:n_val])
    return [files[i] for i in chosen]


# --- batches ----------------------------------------------------------------------------------

def _leave_stopping_to_the_main_process(worker_id: int) -> None:
    """Ctrl-C in a terminal reaches every process of the group. The main process stops the run at a
    step and saves a checkpoint; its DataLoader workers must go on serving it until then."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _collate(items) -> tuple[torch.Tensor, torch.Tensor]:
    kept = [(x, i) for x, i in items if x is not None]
    if not kept:
        return torch.zeros(0, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    return torch.stack([x for x, _ in kept]), torch.as_tensor([i for _, i in kept])


class Batches:
    """Augmented batches of a split: (x float32 (N, C, S, S) normalised, labels, positions in the split).

    Whole uint8 batches are augmented at once on the device (models/augment.py), and the place
    within an epoch can be saved and resumed (`place`, `resume_at`: training/midepoch.py). The order
    of epoch E depends only on (seed, E), so a resumed run sees the data in the same order and two
    runs with the same seed (baseline and Random Erasing) see the same batches. Augmentation draws
    from its own generator, Random Erasing from another, so the two variants also get identical
    crops and flips and differ only in erasing. Under torchrun every rank draws the same permutation
    and takes every world_size-th entry; shuffled shards are cut to equal length (all ranks run the
    same steps), evaluation shards cover every image once (no padded repeats counted twice).
    Image files are decoded by `workers` DataLoader processes (0: in this process).
    """

    def __init__(self, split: Split, *, batch_size: int, transform, device: torch.device, shuffle: bool,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1, workers: int = 0):
        self.split, self.transform, self.device = split, transform, torch.device(device)
        self.tensors = isinstance(split.images, torch.Tensor)
        self.images = split.images.to(self.device) if self.tensors else split.images
        self.labels = split.labels.to(self.device)
        self.batch_size, self.shuffle, self.seed, self.workers = batch_size, shuffle, seed, workers
        self.rank, self.world_size = rank, world_size
        n = len(split)
        self.shard_size = n // world_size if shuffle else len(range(rank, n, world_size))
        self.drop_last = drop_last and self.shard_size >= batch_size
        self.epoch, self.batches_read, self._resume = 0, 0, None
        self._generators = None

    def __len__(self) -> int:
        n = self.shard_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._resume = epoch, None

    def stream_seed(self, stream: int) -> int:
        """Seed of random stream `stream` (0 order, 1 augmentation, 2 erasing) this epoch."""
        return self.seed * 1_000_003 + self.epoch * 7919 + stream

    def order(self) -> torch.Tensor:
        """This epoch's positions for this rank."""
        n = len(self.split)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.stream_seed(0)))
            order = order[:self.shard_size * self.world_size]
        else:
            order = torch.arange(n)
        return order[self.rank::self.world_size]

    def place(self) -> dict:
        """Where this pass over the epoch stands: batches handed out and the augmentation generators."""
        aug, erase = self._generators
        return {"epoch": self.epoch, "batches": self.batches_read, "augment": aug.get_state(),
                "erase": erase.get_state()}

    def resume_at(self, place: dict) -> None:
        """Start the next pass over the current epoch at `place` (from `place()` on the same epoch)."""
        if place.get("epoch") != self.epoch:
            raise ValueError(f"a place in epoch {place.get('epoch')} cannot resume epoch {self.epoch}")
        self._resume = place

    def __iter__(self):
        gens = [torch.Generator(device=self.device).manual_seed(self.stream_seed(s)) for s in (1, 2)]
        start, resume, self._resume = 0, self._resume, None
        if resume is not None:
            start = int(resume["batches"])
            gens[0].set_state(resume["augment"])
            gens[1].set_state(resume["erase"])
        self._generators = tuple(gens)
        self.batches_read = start
        order = self.order()
        chunks = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(start, len(self))]
        for x, positions in self._fetch(chunks):
            self.batches_read += 1
            if len(positions) == 0:          # every file of this batch was unreadable
                continue
            positions = positions.to(self.device)
            yield self.transform(x, generator=gens[0], erase_generator=gens[1]), self.labels[positions], positions

    def _fetch(self, chunks: list[torch.Tensor]):
        """(uint8 batch on the device, its positions) for each chunk of positions."""
        if self.tensors:
            for chunk in chunks:
                chunk = chunk.to(self.device)
                yield self.images[chunk], chunk
            return
        cuda = self.device.type == "cuda"
        # Its own generator: a DataLoader otherwise draws its workers' base seed from the global RNG,
        # which a resumed run restores from the checkpoint, so training's dropout would draw differently.
        loader = torch.utils.data.DataLoader(
            self.images, batch_sampler=[c.tolist() for c in chunks], num_workers=self.workers, collate_fn=_collate,
            pin_memory=cuda, generator=torch.Generator().manual_seed(self.stream_seed(3)),
            worker_init_fn=_leave_stopping_to_the_main_process if self.workers else None)
        for x, positions in loader:
            yield x.to(self.device, non_blocking=cuda), positions
