"""Batched, per-sample augmentation on whole uint8 batches, on the device that holds them.

Why our own code instead of torchvision.transforms: torchvision transforms work on one image
per call (PIL or tensor) and its `RandomErasing`, given a batch, erases the *same* rectangle
in every image. Here each image gets its own crop offset, flip and erasing rectangle, drawn
with a few tensor ops for the whole batch, so a GPU is never waiting on Python
(benchmarks/augment_throughput.py measures the difference).

Where the time goes, and what keeps it small: crop and flip are one gather (a flipped crop
reads its columns backwards); normalisation is one multiply-add in place; Random Erasing
draws noise for the erased pixels only on a CPU (drawing normal numbers is what costs
there, and ~90% of pixels are never erased), and for the whole batch under a mask on a
GPU (where random numbers are cheap and a data-dependent size would cost a host sync).

It lives in models/ (not training/) because the app's Augmentation tab shows exactly the
transforms training uses, and the app never imports training/.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.registry import ModelConfig


@functools.lru_cache(maxsize=None)
def _affine(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with x_uint8 * scale + shift == (x / 255 - mean) / std, shaped (1, C, 1, 1);
    folded in float64 (the same to float32 rounding), once per (mean, std, device)."""
    std_t = torch.as_tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    scale, shift = 1.0 / (255.0 * std_t), -mean_t / std_t
    return scale.float().to(device), shift.float().to(device)


def normalize(batch: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (x / 255 - mean) / std per channel, as one multiply-add in place."""
    scale, shift = _affine(tuple(mean), tuple(std), batch.device)
    return batch.to(torch.float32, copy=True).mul_(scale).add_(shift)


def random_crop_flip(batch: torch.Tensor, size: int, padding: int = 0, flip_p: float = 0.5,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A `size` x `size` crop at its own random offset per image (after zero padding), each image
    flipped horizontally with probability `flip_p`. Draws the offsets (rows, then columns) unless
    the batch is already `size` x `size`, then the flips unless `flip_p` is 0: a crop alone or a
    flip alone draws only its own numbers."""
    if padding:
        batch = F.pad(batch, (padding, padding, padding, padding))
    n, c, h, w = batch.shape
    dev = batch.device
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from {h}x{w}")
    if (h, w) == (size, size):
        oy = ox = torch.zeros(n, dtype=torch.long, device=dev)
    else:
        oy = torch.randint(0, h - size + 1, (n,), device=dev, generator=generator)
        ox = torch.randint(0, w - size + 1, (n,), device=dev, generator=generator)
    ar = torch.arange(size, device=dev)
    cols = ar.expand(n, size)
    if flip_p:
        flip = torch.rand(n, device=dev, generator=generator) < flip_p
        cols = torch.where(flip[:, None], size - 1 - ar, ar)
    cols = cols + ox[:, None]                                                     # (N, S)
    rows = oy[:, None] + ar                                                       # (N, S)
    index = (rows[:, :, None] * w + cols[:, None, :]).view(n, 1, size * size).expand(n, c, size * size)
    return batch.reshape(n, c, h * w).gather(2, index).view(n, c, size, size)


def center_crop(batch: torch.Tensor, size: int) -> torch.Tensor:
    h, w = batch.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return batch[..., top:top + size, left:left + size]


def erasing_rectangles(n: int, h: int, w: int, *, p: float, scale, ratio, attempts: int = 10,
                       device=None, generator: torch.Generator | None = None):
    """Per image: whether to erase, and the rectangle (top, left, height, width), all (N,) tensors.

    As torchvision's `RandomErasing.get_params`: area fraction uniform in `scale`, aspect ratio
    log-uniform in `ratio`, the first of `attempts` draws that fits; no fitting draw, no erasing.
    """
    u = lambda *shape: torch.rand(*shape, device=device, generator=generator)  # noqa: E731
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
    return apply, y0, x0, eh, ew


def _fill_dense(x, apply, y0, x0, eh, ew, value, generator):
    """Whole-batch mask and fill: no host sync, the right choice where random numbers are cheap (GPU)."""
    n, c, h, w = x.shape
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_rows = (ys >= y0[:, None]) & (ys < (y0 + eh)[:, None])          # (N, H)
    in_cols = (xs >= x0[:, None]) & (xs < (x0 + ew)[:, None])          # (N, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]  # (N,1,H,W)
    if value == "random":
        fill = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return torch.where(mask, fill, x, out=x)
    return x.masked_fill_(mask, float(value))


def _fill_sparse(x, apply, y0, x0, eh, ew, value, generator):
    """Draw noise for the erased pixels only (about a tenth of them) and write them by index. Each
    rectangle is a run of `ew` pixels on each of its `eh` rows in each channel: the flat index of
    every erased pixel is built from those runs with one repeat_interleave."""
    n, c, h, w = x.shape
    dev = x.device
    x = x.contiguous()   # itself when it already is
    sel = apply.nonzero().flatten()
    if sel.numel() == 0:
        return x
    eh, ew = eh[sel], ew[sel]
    base = sel * (c * h * w) + y0[sel] * w + x0[sel]                     # top-left pixel, channel 0
    rect = torch.repeat_interleave(torch.arange(sel.numel(), device=dev), eh)  # rectangle of each row
    first_row = torch.cumsum(eh, 0) - eh
    row_start = base[rect] + (torch.arange(rect.numel(), device=dev) - first_row[rect]) * w
    row_start = (row_start[None, :] + (torch.arange(c, device=dev) * (h * w))[:, None]).reshape(-1)
    row_len = ew[rect].repeat(c)
    total = int(row_len.sum())
    offset = torch.cumsum(row_len, 0) - row_len
    flat = torch.repeat_interleave(row_start - offset, row_len, output_size=total)
    flat += torch.arange(total, device=dev)
    if value == "random":
        fill = torch.randn(total, device=dev, dtype=x.dtype, generator=generator)
    else:
        fill = torch.full((total,), float(value), device=dev, dtype=x.dtype)
    x.view(-1).index_put_((flat,), fill)   # not put_: it has no deterministic implementation
    return x


def random_erasing(batch: torch.Tensor, *, p: float = 0.5, scale=(0.02, 0.4), ratio=(0.3, 3.3),
                   value: float | str = "random", generator: torch.Generator | None = None,
                   inplace: bool = False, sparse: bool | None = None) -> torch.Tensor:
    """Random Erasing (Zhong et al. 2017) with its own rectangle per image (`erasing_rectangles`).

    `value="random"` fills with standard-normal noise (the batch is already normalised, so this
    is the paper's random-pixel fill).

    `sparse` (default: on CPU) draws noise for the erased pixels only instead of for the whole
    batch; both give the same distribution, from different random streams.
    """
    n, c, h, w = batch.shape
    apply, y0, x0, eh, ew = erasing_rectangles(n, h, w, p=p, scale=scale, ratio=ratio, device=batch.device,
                                               generator=generator)
    x = batch if inplace else batch.clone()
    if x.dtype == torch.uint8 and value == "random":
        raise ValueError("random-value erasing needs a normalised float batch")
    if sparse is None:
        sparse = batch.device.type == "cpu"
    fill = _fill_sparse if sparse else _fill_dense
    return fill(x, apply, y0, x0, eh, ew, value, generator)


@dataclass(kw_only=True)
class TrainAugment:
    """The training transform of a task: crop (+padding), flip, normalise, Random Erasing.

    Input: uint8 (N, C, H, W) as stored; output: float32 (N, C, crop, crop), normalised.
    Random Erasing comes last, after normalisation, and only here: evaluation uses
    `EvalTransform`, which never erases.
    """
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    padding: int = 0
    flip: bool = False
    random_erasing: dict | None = None   # p, scale, ratio, value (models/tasks.py)

    @classmethod
    def from_recipe(cls, augment: dict, cfg: ModelConfig) -> "TrainAugment":
        return cls(crop=augment["crop"], padding=augment.get("padding", 0), flip=augment.get("flip", False),
                   random_erasing=augment.get("random_erasing"), mean=cfg.mean, std=cfg.std)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None,
                 erase_generator: torch.Generator | None = None) -> torch.Tensor:
        """`erase_generator` (default: `generator`) drives Random Erasing alone, so a run with
        and one without erasing can share crops and flips."""
        if self.padding or tuple(batch.shape[-2:]) != (self.crop, self.crop) or self.flip:
            batch = random_crop_flip(batch, self.crop, self.padding, 0.5 if self.flip else 0.0, generator)
        x = normalize(batch, self.mean, self.std)
        if self.random_erasing:
            re = self.random_erasing
            x = random_erasing(x, p=re["p"], scale=tuple(re["scale"]), ratio=tuple(re["ratio"]),
                               value=re.get("value", "random"), generator=erase_generator or generator,
                               inplace=True)   # x is this call's own tensor
        return x


@dataclass(kw_only=True)
class EvalTransform:
    """Evaluation: centre crop of the stored uint8 batch to the input size, then normalise."""
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> "EvalTransform":
        return cls(crop=cfg.input_size, mean=cfg.mean, std=cfg.std)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None,
                 erase_generator: torch.Generator | None = None) -> torch.Tensor:
        return normalize(center_crop(batch, self.crop), self.mean, self.std)
