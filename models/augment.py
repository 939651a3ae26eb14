"""Batched, per-sample augmentation on whole uint8 batches, on the device that holds them.

Why our own code instead of torchvision.transforms: torchvision transforms work on one image
per call (PIL or tensor) and its `RandomErasing`, given a batch, erases the *same* rectangle
in every image. Here each image gets its own crop offset, flip and erasing rectangle, drawn
with a few tensor ops for the whole batch, so a GPU is never waiting on Python
(benchmarks/augment_throughput.py measures the difference).

It lives in models/ (not training/) because the app's Augmentation tab shows exactly the
transforms training uses, and the app never imports training/.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.registry import ModelConfig


def normalize(batch: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32, scaled to 0-1 then normalised per channel."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1)
    return (batch.float().div_(255.0) - mean_t) / std_t


def random_crop(batch: torch.Tensor, size: int, padding: int = 0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A `size` x `size` crop at an independent random offset per image, after zero padding."""
    if padding:
        batch = F.pad(batch, (padding, padding, padding, padding))
    n, _, h, w = batch.shape
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}")
    dev = batch.device
    oy = torch.randint(0, h - size + 1, (n,), device=dev, generator=generator)
    ox = torch.randint(0, w - size + 1, (n,), device=dev, generator=generator)
    ar = torch.arange(size, device=dev)
    rows = (oy[:, None] + ar)[:, :, None]               # (N, S, 1)
    cols = (ox[:, None] + ar)[:, None, :]               # (N, 1, S)
    idx = torch.arange(n, device=dev)[:, None, None]
    # Advanced indexing around a slice puts the indexed dims first: (N, S, S, C).
    return batch[idx, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return batch[..., top:top + size, left:left + size]


def random_flip(batch: torch.Tensor, p: float = 0.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image horizontally with probability p, independently."""
    flip = torch.rand(batch.shape[0], device=batch.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], batch.flip(-1), batch)


def random_erasing(batch: torch.Tensor, *, p: float = 0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3),
                   value: float | str = "random", attempts: int = 10,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Random Erasing (Zhong et al. 2017) with its own rectangle per image.

    Like torchvision's `RandomErasing`: area fraction uniform in `scale`, aspect ratio
    log-uniform in `ratio`, up to `attempts` draws until the rectangle fits; an image with no
    fitting draw is left alone. `value="random"` fills with standard-normal noise (the batch
    is already normalised, so this is the paper's random-pixel fill).
    """
    n, c, h, w = batch.shape
    dev = batch.device
    u = lambda *shape: torch.rand(*shape, device=dev, generator=generator)  # noqa: E731
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u(n, attempts))
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u(n, attempts)
    aspect = torch.exp(log_r)
    eh = torch.sqrt(area * aspect).round().long()
    ew = torch.sqrt(area / aspect).round().long()
    fits = (eh < h) & (ew < w) & (eh > 0) & (ew > 0)
    first = fits.int().argmax(dim=1, keepdim=True)
    eh = eh.gather(1, first).squeeze(1)
    ew = ew.gather(1, first).squeeze(1)
    apply = fits.any(dim=1) & (u(n) < p)
    y0 = (u(n) * (h - eh + 1).float()).long()
    x0 = (u(n) * (w - ew + 1).float()).long()
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    in_rows = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])          # (N, H)
    in_cols = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])          # (N, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]  # (N,1,H,W)
    if value == "random":
        fill = torch.randn(batch.shape, device=dev, dtype=batch.dtype, generator=generator)
    else:
        fill = torch.full_like(batch, float(value))
    return torch.where(mask, fill, batch)


class TrainAugment:
    """The training transform of a task: crop (+padding), flip, normalise, Random Erasing.

    Input: uint8 (N, C, H, W) as stored; output: float32 (N, C, crop, crop), normalised.
    Random Erasing comes last, after normalisation, and only here: evaluation uses
    `EvalTransform`, which never erases.
    """

    def __init__(self, *, crop: int, padding: int = 0, flip: bool = False,
                 random_erasing: dict | None = None, mean, std):
        self.crop = crop
        self.padding = padding
        self.flip = flip
        self.random_erasing = dict(random_erasing) if random_erasing else None
        self.mean = tuple(mean)
        self.std = tuple(std)

    @classmethod
    def from_recipe(cls, augment: dict, cfg: ModelConfig) -> "TrainAugment":
        return cls(crop=augment["crop"], padding=augment.get("padding", 0), flip=augment.get("flip", False),
                   random_erasing=augment.get("random_erasing"), mean=cfg.mean, std=cfg.std)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None,
                 erase_generator: torch.Generator | None = None) -> torch.Tensor:
        """`erase_generator` (default: `generator`) drives Random Erasing alone, so a run with
        and one without erasing can share crops and flips."""
        if self.padding or batch.shape[-1] != self.crop or batch.shape[-2] != self.crop:
            batch = random_crop(batch, self.crop, self.padding, generator)
        if self.flip:
            batch = random_flip(batch, 0.5, generator)
        x = normalize(batch, self.mean, self.std)
        if self.random_erasing:
            re = self.random_erasing
            x = random_erasing(x, p=re["p"], scale=tuple(re["scale"]), ratio=tuple(re["ratio"]),
                               value=re.get("value", "random"), generator=erase_generator or generator)
        return x

    def __repr__(self) -> str:
        return (f"TrainAugment(crop={self.crop}, padding={self.padding}, flip={self.flip}, "
                f"random_erasing={self.random_erasing})")


class EvalTransform:
    """Evaluation: centre crop of the stored uint8 batch to the input size, then normalise."""

    def __init__(self, *, crop: int, mean, std):
        self.crop = crop
        self.mean = tuple(mean)
        self.std = tuple(std)

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "EvalTransform":
        return cls(crop=cfg.input_size, mean=cfg.mean, std=cfg.std)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None,
                 erase_generator: torch.Generator | None = None) -> torch.Tensor:
        return normalize(center_crop(batch, self.crop), self.mean, self.std)
