"""Datasets for the three tasks, held as uint8 tensors and served in augmented batches.

Every dataset downloads on first use into `data_dir` through torchvision's own dataset
classes (which verify what they download); when the files are already there, no network
is touched. Splits are loaded once as uint8 (N, C, H, W) tensors; `DeviceLoader` keeps them
on the training device and augments whole batches there (models/augment.py).

Cats vs dogs images are decoded and resized once into a uint8 cache in the data dir
(a .npy file, memory-mapped), rebuilt when the source files change.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from models.atomic import atomic_write, atomic_write_json
from models.imagefolder import SPLIT_FOLDERS, class_folder, split_files
from models.predict import ImageInputError, decode_image
from training.tasks import TaskSpec

log = logging.getLogger(__name__)

CACHE_DIR = ".cnn_studio_cache"

# What each task needs in --data-dir (for messages), and what torchvision creates there when it downloads.
EXPECTED_LAYOUT = {
    "mnist": "MNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
             "t10k-labels-idx1-ubyte",
    "cifar10": "cifar-10-batches-py/ with data_batch_1..5, test_batch, batches.meta",
    "catsdogs": "train/{cat,dog}/*.jpg and val/{cat,dog}/*.jpg (an image folder), or oxford-iiit-pet/ "
                "as torchvision downloads it",
}
DOWNLOAD_FOOTPRINT = {"mnist": ("MNIST",), "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
                      "catsdogs": ("oxford-iiit-pet",)}


class DatasetError(Exception):
    """A dataset that cannot be read or fetched; one line naming the folder, what belongs there, what to do."""


def check_data_dir(task_name: str, data_dir: str | os.PathLike) -> None:
    """Refuse a --data-dir that cannot be right before anything is read, downloaded or created."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DatasetError(f"--data-dir {data_dir}: is a file, not a folder; {task_name} expects a folder "
                           f"holding {EXPECTED_LAYOUT[task_name]}")
    if task_name == "catsdogs" and data_dir.is_dir():
        splits = [s for s in ("train", "val") if (data_dir / s).is_dir()]
        if len(splits) == 1:
            missing = ({"train", "val"} - set(splits)).pop()
            raise DatasetError(f"--data-dir {data_dir}: has {splits[0]}/ but no {missing}/; an image folder "
                               f"needs both (train/{{cat,dog}}/ and val/{{cat,dog}}/)")
        if not splits and any(class_folder(data_dir, label) for label in ("cat", "dog")):
            raise DatasetError(f"--data-dir {data_dir}: holds class folders (cat/, dog/) itself; point --data-dir "
                               f"at the folder above, which holds train/ and val/")


@dataclass
class Split:
    name: str                 # "train" / "test" / "val" / "trainval"
    images: torch.Tensor      # uint8 (N, C, H, W)
    labels: torch.Tensor      # int64 (N,)
    indices: torch.Tensor     # int64 (N,): position of each image in the full split
    skipped: int = 0          # unreadable files left out (image folders)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def subset_indices(n: int, limit: int | None, seed: int) -> torch.Tensor:
    """A deterministic, seeded subset of `limit` positions out of `n`, in ascending order."""
    if limit is None or limit >= n:
        return torch.arange(n)
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit].sort().values


def load_split(task: TaskSpec, data_dir: str | os.PathLike, *, train: bool, limit: int | None = None,
               seed: int = 0, workers: int = 4, download: bool = True) -> Split:
    """The training or validation split of `task`, as uint8 tensors (a seeded subset with `limit`)."""
    loaders = {"cifar10": _load_cifar10, "mnist": _load_mnist, "catsdogs": _load_catsdogs}
    check_data_dir(task.name, data_dir)
    # Different subset seeds for the two splits, so equal limits do not pick the same positions.
    split = loaders[task.name](task, Path(data_dir), train=train, limit=limit, seed=seed + (0 if train else 1),
                               workers=workers, download=download)
    if len(split) == 0:
        raise DatasetError(f"{task.name}: the {split.name} split has no usable images in {data_dir}")
    return split


def _torchvision_dataset(task_name: str, data_dir: Path, make, *, download: bool):
    """`make(download)` builds a torchvision dataset; a failed download leaves nothing behind.

    torchvision creates its folders and partial files before a download fails (offline, a
    proxy, a wrong URL). Whatever did not exist before the attempt is removed again, and the
    failure becomes one line that says what to put where when there is no network.
    """
    new_paths = [data_dir / name for name in DOWNLOAD_FOOTPRINT[task_name] if not (data_dir / name).exists()]
    top_missing = None
    for folder in (data_dir, *data_dir.parents):
        if folder.exists():
            break
        top_missing = folder
    try:
        return make(download)
    except (OSError, RuntimeError) as e:
        for path in ([top_missing] if top_missing is not None else new_paths):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
        reason = " ".join(str(e).split()) or type(e).__name__
        if len(reason) > 200:
            reason = reason[:200] + "..."
        what = "and downloading it failed" if download else "and downloading is off"
        raise DatasetError(f"{task_name}: not found in {data_dir} {what} ({reason}); expected there: "
                           f"{EXPECTED_LAYOUT[task_name]}. Offline, copy those files into {data_dir} "
                           f"or point --data-dir at a folder that has them") from e


def load_splits(task: TaskSpec, data_dir: str | os.PathLike, *, limit_train: int | None = None,
                limit_val: int | None = None, seed: int = 0, workers: int = 4,
                download: bool = True) -> tuple[Split, Split]:
    common = dict(seed=seed, workers=workers, download=download)
    return (load_split(task, data_dir, train=True, limit=limit_train, **common),
            load_split(task, data_dir, train=False, limit=limit_val, **common))


def _load_cifar10(task, data_dir, *, train, limit, seed, workers, download) -> Split:
    from torchvision.datasets import CIFAR10
    ds = _torchvision_dataset(task.name, data_dir, lambda dl: CIFAR10(str(data_dir), train=train, download=dl),
                              download=download)
    idx = subset_indices(len(ds.targets), limit, seed)
    images = torch.from_numpy(ds.data)[idx].permute(0, 3, 1, 2).contiguous()   # (N, 3, 32, 32)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)[idx]
    return Split("train" if train else "test", images, labels, idx)


def _load_mnist(task, data_dir, *, train, limit, seed, workers, download) -> Split:
    from torchvision.datasets import MNIST
    ds = _torchvision_dataset(task.name, data_dir, lambda dl: MNIST(str(data_dir), train=train, download=dl),
                              download=download)
    idx = subset_indices(len(ds.targets), limit, seed)
    images = ds.data[idx].unsqueeze(1)                                           # (N, 1, 28, 28)
    size = task.stored_size
    images = TF.resize(images, [size, size], antialias=True)                     # 28 -> 32, uint8
    return Split("train" if train else "test", images.contiguous(), ds.targets[idx].long(), idx)


# --- cats vs dogs -------------------------------------------------------------------------

def _catsdogs_files(task, data_dir: Path, train: bool, download: bool) -> tuple[list[Path], list[int], str]:
    """The split's files and labels, laid out as models/imagefolder.py reads them (the app too)."""
    labels = task.model.labels
    if (data_dir / SPLIT_FOLDERS[train]).is_dir():
        try:
            return split_files(data_dir, labels, train=train)
        except FileNotFoundError as e:
            raise DatasetError(str(e)) from None
    return _torchvision_dataset(task.name, data_dir, lambda dl: split_files(data_dir, labels, train=train, download=dl),
                                download=download)


def _decode_resized(path: Path, size: int) -> np.ndarray | None:
    """Decode, apply EXIF orientation, resize the shorter side to `size`, centre crop; None if unreadable."""
    try:
        img = decode_image(path).convert("RGB")
    except ImageInputError as e:
        log.warning("skipping unreadable image %s: %s", path, e)
        return None
    img = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _files_digest(files: list[Path], targets: list[int], size: int) -> str:
    h = hashlib.sha256(f"v1 size={size}".encode())
    for f, t in zip(files, targets):
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}|{t}\n".encode())
    return h.hexdigest()[:20]


def _load_catsdogs(task, data_dir, *, train, limit, seed, workers, download) -> Split:
    files, targets, split_name = _catsdogs_files(task, data_dir, train, download)
    idx = subset_indices(len(files), limit, seed)
    files = [files[i] for i in idx.tolist()]
    targets = [targets[i] for i in idx.tolist()]
    size = task.stored_size
    digest = _files_digest(files, targets, size)
    cache = data_dir / CACHE_DIR / f"catsdogs-{split_name}-{digest}"
    images_file, meta_file = cache.with_suffix(".npy"), cache.with_suffix(".json")
    if images_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        arr = np.load(images_file, mmap_mode="r")
        kept = meta["kept"]
        log.info("cats vs dogs %s: %d images from cache %s", split_name, len(kept), images_file)
    else:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            decoded = list(pool.map(lambda p: _decode_resized(p, size), files))
        kept = [i for i, a in enumerate(decoded) if a is not None]
        skipped = len(files) - len(kept)
        arr = np.stack([decoded[i] for i in kept]) if kept else np.zeros((0, size, size, 3), np.uint8)

        def write_images(tmp):
            with open(tmp, "wb") as f:
                np.save(f, arr)
        atomic_write(images_file, write_images)
        atomic_write_json(meta_file, {"kept": kept, "skipped": skipped, "files": len(files)})
        log.info("cats vs dogs %s: decoded %d images, skipped %d unreadable", split_name, len(kept), skipped)
    skipped = len(files) - len(kept)
    if skipped:
        log.warning("cats vs dogs %s: skipped %d unreadable image(s)", split_name, skipped)
    images = torch.from_numpy(np.array(arr)).permute(0, 3, 1, 2).contiguous()  # copy out of the memmap
    labels = torch.as_tensor([targets[i] for i in kept], dtype=torch.int64)
    return Split(split_name, images, labels, idx[torch.as_tensor(kept, dtype=torch.int64)], skipped)


# --- batches on the device -----------------------------------------------------------------

class EpochOrder:
    """Which positions of a split each epoch visits, on this rank, and in what order.

    The order of epoch E depends only on (seed, E), so a resumed run sees the data in the
    same order. Distributed: every rank draws the same permutation (shared seed) and takes
    every world_size-th entry from its rank on; shuffled (training) shards are cut to equal
    length so all ranks run the same number of steps, evaluation shards cover every image once.
    Shared by DeviceLoader and training.usual.UsualLoader, so both paths visit the same images.

    A loader also knows its place within the epoch: `place()` says how many batches it has
    handed out (and whatever else it needs to hand out the next ones as it would have), and
    `resume_at(place)` makes the next pass over the epoch start there (training/midepoch.py).
    """
    kind = ""          # "device" | "dataloader": which path wrote a place (the two draw differently)

    def _init_order(self, n: int, *, batch_size: int, shuffle: bool, drop_last: bool, seed: int,
                    rank: int, world_size: int) -> None:
        self.num_items = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank, world_size
        self.shard_size = n // world_size if shuffle else len(range(rank, n, world_size))
        self.drop_last = drop_last and self.shard_size >= batch_size
        self.batches_read = 0              # batches of the current pass handed out so far
        self._resume: dict | None = None   # where the next pass starts (resume_at)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._resume = None

    def resume_at(self, place: dict) -> None:
        """Start the next pass over the current epoch at `place` (from `place()` on the same epoch)."""
        if place.get("kind") != self.kind or place.get("epoch") != self.epoch:
            raise ValueError(f"a place of the {place.get('kind')} loader in epoch {place.get('epoch')} cannot "
                             f"resume the {self.kind} loader in epoch {self.epoch}")
        self._resume = place

    def _take_resume(self) -> dict | None:
        place, self._resume = self._resume, None
        return place

    def place(self) -> dict:
        return {"kind": self.kind, "epoch": self.epoch, "batches": self.batches_read}

    def __len__(self) -> int:
        n = self.shard_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def stream_seed(self, stream: int) -> int:
        """Seed of random stream `stream` (0 order, 1 augmentation, 2 erasing) this epoch."""
        return self.seed * 1_000_003 + self.epoch * 7919 + stream

    def order(self) -> torch.Tensor:
        """This epoch's positions for this rank (CPU tensor: the same on every device)."""
        if self.shuffle:
            order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.stream_seed(0)))
        else:
            order = torch.arange(self.num_items)
        if self.world_size > 1:
            order = order[:self.shard_size * self.world_size] if self.shuffle else order
            order = order[self.rank::self.world_size]
        return order


class DeviceLoader(EpochOrder):
    """Batches of a uint8 split kept on `device`, shuffled with `randperm`, augmented per batch.

    The order of epoch E depends only on (seed, E), so a resumed run sees the data in the
    same order, and two runs with the same seed (baseline and Random Erasing) see the same
    batches. Augmentation draws from its own generators; Random Erasing from a third one,
    so the two variants also get identical crops and flips and differ only in erasing.
    Its place within an epoch holds those two generators' states.
    """
    kind = "device"

    def __init__(self, split: Split, *, batch_size: int, transform, device: torch.device,
                 shuffle: bool, drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.images = split.images.to(device, non_blocking=True)
        self.labels = split.labels.to(device, non_blocking=True)
        self.indices = split.indices
        self.transform = transform
        self.device = device
        self._init_order(len(split), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         rank=rank, world_size=world_size)

    def _generator(self, stream: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.stream_seed(stream))

    def __iter__(self):
        order = self.order().to(self.device)
        aug_gen, erase_gen = self._generator(1), self._generator(2)
        start, resume = 0, self._take_resume()
        if resume is not None:
            start = int(resume["batches"])
            aug_gen.set_state(resume["augment"])
            erase_gen.set_state(resume["erase"])
        self._generators = (aug_gen, erase_gen)
        self.batches_read = start
        for b in range(start, len(self)):
            batch_idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.transform(self.images[batch_idx], generator=aug_gen, erase_generator=erase_gen)
            self.batches_read = b + 1
            yield x, self.labels[batch_idx], batch_idx

    def place(self) -> dict:
        aug_gen, erase_gen = self._generators
        return {**super().place(), "augment": aug_gen.get_state(), "erase": erase_gen.get_state()}
