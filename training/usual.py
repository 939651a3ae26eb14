"""The usual loop: torchvision datasets, per-image PIL transforms, a torch DataLoader.

This is how tutorials (and the original homework) feed a CNN: each image is read as a PIL
image, cropped, flipped, converted to a tensor, normalised and (optionally) randomly erased
on its own, in DataLoader worker processes, then collated and copied to the device.

It has two jobs:

- the *fallback data path* of `python -m training.train --loader dataloader`, for image
  folders too large to hold in memory (nothing is cached: every epoch decodes every file);
- the *baseline* that benchmarks/ compares CNN Studio's device-resident path against.

It mirrors `training.data` so the two are interchangeable:

- `load_usual_split` takes the same seeded subset as `training.data.load_split` (same
  positions, same labels, same order) but keeps only a lazy view of the images;
- `UsualLoader` has `DeviceLoader`'s interface and batch contract: it yields
  `(x, y, idx)` with x float32 (N, C, S, S) normalised, y int64 (N,), idx int64 (N,) the
  positions in the split, all on the training device; the epoch order is the same
  permutation DeviceLoader draws for (seed, epoch), sharded the same way under torchrun;
- it takes the same transform objects (`TrainAugment`, `EvalTransform` from
  models/augment.py) and runs their per-image torchvision equivalents: RandomCrop with
  padding, RandomHorizontalFlip, ToImage/ToDtype/Normalize, RandomErasing with the
  recipe's parameters (training only, after normalisation), CenterCrop for evaluation.

Randomness: with workers, each epoch's worker seeds come from (seed, epoch); with
`workers=0` the transforms draw from the global torch RNG (seeded and checkpointed by
training/train.py). Resuming within an epoch: with `workers=0` the batches already trained
on are left out of the sampler (the global RNG comes back from the checkpoint); with workers,
they are read again and dropped, since each worker's generator must make the same draws to
reach the same state. Unreadable image files are found by one decoding pass when the split
is loaded (threads, the same decoder and checks as the device path's cache) and left out;
a file that becomes unreadable later is dropped from its batch with a warning.
"""
from __future__ import annotations

import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import default_collate
from torchvision.transforms import v2

from models.augment import EvalTransform, TrainAugment
from models.predict import ImageInputError, decode_image
from training.data import (DatasetError, EpochOrder, Split, _catsdogs_files, _torchvision_dataset, check_data_dir,
                           subset_indices)
from training.tasks import TaskSpec

log = logging.getLogger(__name__)


# --- the images of a split, read one at a time ------------------------------------------------

class _TorchvisionReader:
    """Item i of a torchvision dataset (CIFAR10, MNIST) as a PIL image, without its label."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, i: int) -> Image.Image:
        return self.dataset[i][0]


class _ArrayReader:
    """Row i of a uint8 (N, C, H, W) tensor as a PIL image, as torchvision's CIFAR10 does
    (`Image.fromarray` per item); for benchmarks on synthetic or already loaded data."""

    def __init__(self, images: torch.Tensor):
        self.arrays = images.permute(0, 2, 3, 1).contiguous().numpy()     # (N, H, W, C)

    def __call__(self, i: int) -> Image.Image:
        a = self.arrays[i]
        return Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


class _FileReader:
    """File i of an image folder, through the same decoder as the app and the device path."""

    def __init__(self, files: list[Path]):
        self.files = files

    def __call__(self, i: int) -> Image.Image:
        return decode_image(self.files[i]).convert("RGB")


class SourceImages:
    """A lazy stand-in for `Split.images`: image i of the split, decoded when asked for.

    `pil(i)` gives the PIL image at the task's stored size (MNIST 28 -> 32, cats vs dogs
    shorter side -> 256 and centre crop, as the device path stores them), or None if the
    file cannot be read; `images[i]` gives it as uint8 (C, S, S) like a row of a stored split
    (used for the run's example images).
    """

    def __init__(self, read, positions: list[int], fit: v2.Transform | None):
        self.read = read
        self.positions = positions       # position in the source for each image of the split
        self.fit = fit

    def __len__(self) -> int:
        return len(self.positions)

    def pil(self, i: int) -> Image.Image | None:
        try:
            img = self.read(self.positions[i])
        except ImageInputError as e:
            log.warning("dropping unreadable image %s: %s", self.positions[i], e)
            return None
        return self.fit(img) if self.fit is not None else img

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.pil(int(i))
        if img is None:
            raise ImageInputError(f"image {i} of the split cannot be read")
        return v2.functional.pil_to_tensor(img)


def _fit_to_stored(task: TaskSpec, native: int | None) -> v2.Transform | None:
    """PIL -> PIL at `task.stored_size`, as training/data.py stores the split (None: already that size)."""
    size = task.stored_size
    if native == size:
        return None
    if native is not None:                      # fixed-size source (MNIST 28x28): resize the square
        return v2.Resize((size, size), antialias=True)
    # Image folders: shorter side to `size`, then the centred square (ImageOps.fit in data.py).
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])


def _readable(path: Path) -> bool:
    """Does the app's decoder accept this file? The same check the device path's cache applies."""
    try:
        decode_image(path)
        return True
    except ImageInputError:
        return False


def load_usual_split(task: TaskSpec, data_dir: str | os.PathLike, *, train: bool, limit: int | None = None,
                     seed: int = 0, workers: int = 4, download: bool = True) -> Split:
    """The split `training.data.load_split` gives (same seeded subset, labels, positions), images lazy."""
    data_dir = Path(data_dir)
    check_data_dir(task.name, data_dir)
    subset_seed = seed + (0 if train else 1)            # as training.data.load_split
    skipped = 0
    if task.name in ("cifar10", "mnist"):
        from torchvision.datasets import CIFAR10, MNIST
        cls, native = (CIFAR10, 32) if task.name == "cifar10" else (MNIST, 28)
        ds = _torchvision_dataset(task.name, data_dir, lambda dl: cls(str(data_dir), train=train, download=dl),
                                  download=download)
        targets = torch.as_tensor(ds.targets, dtype=torch.int64)
        idx = subset_indices(len(targets), limit, subset_seed)
        labels = targets[idx]
        images = SourceImages(_TorchvisionReader(ds), idx.tolist(), _fit_to_stored(task, native))
        name = "train" if train else "test"
    elif task.name == "catsdogs":
        files, targets, name = _catsdogs_files(task, data_dir, train, download)
        idx = subset_indices(len(files), limit, subset_seed)
        files = [Path(files[i]) for i in idx.tolist()]
        with ThreadPoolExecutor(max(1, workers)) as pool:
            ok = list(pool.map(_readable, files))
        kept = [i for i, good in enumerate(ok) if good]
        skipped = len(files) - len(kept)
        if skipped:
            log.warning("cats vs dogs %s: skipped %d unreadable image(s)", name, skipped)
        labels = torch.as_tensor([targets[j] for j in idx.tolist()], dtype=torch.int64)[kept]
        idx = idx[torch.as_tensor(kept, dtype=torch.int64)]
        images = SourceImages(_FileReader(files), kept, _fit_to_stored(task, None))
    else:
        raise ValueError(f"no DataLoader path for task {task.name!r}")
    split = Split(name, images, labels, idx, skipped)   # images: SourceImages, not a tensor
    if len(split) == 0:
        raise DatasetError(f"{task.name}: the {name} split has no usable images in {data_dir}")
    return split


def usual_split_from_tensor(split: Split) -> Split:
    """The same split for the DataLoader path, its uint8 images served one PIL image at a time."""
    images = split.images.cpu()
    return Split(split.name, SourceImages(_ArrayReader(images), list(range(len(images))), None),
                 split.labels.cpu(), split.indices, split.skipped)


def load_usual_splits(task: TaskSpec, data_dir: str | os.PathLike, *, limit_train: int | None = None,
                      limit_val: int | None = None, seed: int = 0, workers: int = 4,
                      download: bool = True) -> tuple[Split, Split]:
    common = dict(seed=seed, workers=workers, download=download)
    return (load_usual_split(task, data_dir, train=True, limit=limit_train, **common),
            load_usual_split(task, data_dir, train=False, limit=limit_val, **common))


# --- per-image transforms -----------------------------------------------------------------------

def per_image_transform(transform: TrainAugment | EvalTransform) -> v2.Compose:
    """The torchvision per-image pipeline equivalent to a batched transform of models/augment.py.

    Input: a PIL image at the stored size; output: float32 (C, S, S), normalised. A torchvision
    v2 transform is taken as it is (benchmarks/ build the homework's pipeline that way).
    """
    if isinstance(transform, v2.Transform):          # already a per-image pipeline
        return transform if isinstance(transform, v2.Compose) else v2.Compose([transform])
    if isinstance(transform, TrainAugment):
        steps: list[v2.Transform] = [v2.RandomCrop(transform.crop, padding=transform.padding or None)]
        if transform.flip:
            steps.append(v2.RandomHorizontalFlip(0.5))
    elif isinstance(transform, EvalTransform):
        steps = [v2.CenterCrop(transform.crop)]
    else:
        raise TypeError(f"expected TrainAugment or EvalTransform, got {type(transform).__name__}")
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(list(transform.mean), list(transform.std))]
    re = getattr(transform, "random_erasing", None)
    if re:   # training only (EvalTransform has none), after normalisation
        steps.append(v2.RandomErasing(p=re["p"], scale=tuple(re["scale"]), ratio=tuple(re["ratio"]),
                                      value=re.get("value", "random")))
    return v2.Compose(steps)


class _Items(torch.utils.data.Dataset):
    """(image tensor, label, position in the split) for each position; None if unreadable."""

    def __init__(self, images: SourceImages, labels: torch.Tensor, transform: v2.Compose):
        self.images = images
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images.pil(i)
        if img is None:
            return None
        return self.transform(img), self.labels[i], i


def _leave_stopping_to_the_main_process(worker_id: int) -> None:
    """Ctrl-C in a terminal reaches every process of the group. The main process stops the run at a
    step and saves a checkpoint; its DataLoader workers must go on serving it until then (torch's
    workers end on a KeyboardInterrupt, and the main process's next batch would fail)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _collate(items):
    items = [it for it in items if it is not None]
    return default_collate(items) if items else None


# --- batches ----------------------------------------------------------------------------------

class UsualLoader(EpochOrder):
    """A torch DataLoader over per-image transforms, with `training.data.DeviceLoader`'s interface.

    Same constructor arguments as DeviceLoader plus `workers` and `pin_memory` (default: pinned
    when the device is CUDA, copies then non-blocking). The transform is a `TrainAugment` or
    `EvalTransform`, applied through `per_image_transform`.
    """
    kind = "dataloader"

    def __init__(self, split: Split, *, batch_size: int, transform, device: torch.device,
                 shuffle: bool, drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 workers: int = 0, pin_memory: bool | None = None):
        if not isinstance(split.images, SourceImages):
            raise TypeError("UsualLoader reads splits made by training.usual.load_usual_split")
        self.split = split
        self.indices = split.indices
        self.transform = transform
        self.dataset = _Items(split.images, split.labels, per_image_transform(transform))
        self.device = torch.device(device)
        self.workers = workers
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        # The same epoch order and rank shards as DeviceLoader (training.data.EpochOrder). Not
        # DistributedSampler: it pads evaluation shards with repeated images, which would count
        # them twice in the reduced metrics, and its order would differ from the device path's.
        self._init_order(len(split), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         rank=rank, world_size=world_size)

    def __iter__(self):
        resume = self._take_resume()
        done = int(resume["batches"]) if resume is not None else 0
        order = self.order()
        replay = done if self.workers else 0
        if not self.workers:           # the global RNG is restored from the checkpoint: nothing to redraw
            order = order[done * self.batch_size:]
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order.tolist(),
                            drop_last=self.drop_last, num_workers=self.workers, pin_memory=self.pin_memory,
                            collate_fn=_collate, generator=torch.Generator().manual_seed(self.stream_seed(1)),
                            worker_init_fn=_leave_stopping_to_the_main_process if self.workers else None)
        non_blocking = self.pin_memory
        batches = iter(loader)
        for _ in range(replay):        # the workers' draws for the batches already trained on
            next(batches)
        self.batches_read = done
        for batch in batches:
            self.batches_read += 1
            if batch is None:          # every image of this batch was unreadable
                continue
            x, y, idx = batch
            yield (x.to(self.device, non_blocking=non_blocking), y.to(self.device, non_blocking=non_blocking),
                   idx.to(self.device, non_blocking=non_blocking))


def dataloader_path(workers: int = 4):
    """(split loader, batch loader) for `training.train --loader dataloader`, drop-in
    replacements for (training.data.load_splits, training.data.DeviceLoader)."""
    def batches(split: Split, **kwargs) -> UsualLoader:
        return UsualLoader(split, workers=workers, **kwargs)
    return load_usual_splits, batches
