"""Test-time augmentation: average the probabilities over a few shifted (and mirrored) views.

Reported beside plain accuracy, never instead of it (`python -m training.evaluate --tta`).

The views are exact crops of the stored image: the centre crop the model is evaluated on,
and the same crop moved by `shift` pixels up, down, left and right; with `flip`, each of
these mirrored too (5 or 10 views). Where the stored image is no larger than the input
(CIFAR-10, MNIST: 32 px stored, 32 px input) it is first padded with black pixels, as the
training crops of those tasks are; for cats vs dogs (256 px stored, 224 px input) the
shifted crops see real pixels. Flips are used only for tasks trained with flips (not for
digits, where a mirrored 2 is not a 2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.predict import logits_to_probs
from models.registry import ModelConfig


class TTAModel(nn.Module):
    """Wraps a model: input the normalised *uncropped* batch (`EvalTransform` at crop=cfg.stored_size),
    output logits whose probabilities are the mean of the views' probabilities (log p for softmax
    models, logit(p) for the one-logit model), so evaluation code treats it as any model."""

    def __init__(self, model: nn.Module, cfg: ModelConfig, *, flip: bool = True, shift: int | None = None):
        super().__init__()
        self.model, self.cfg, self.flip = model, cfg, flip
        # By default a small shift: 1/16 of the input side (2 px at 32, 14 px at 224).
        self.shift = s = max(1, round(cfg.input_size / 16)) if shift is None else int(shift)
        self.offsets = [(0, 0)] + ([(-s, 0), (s, 0), (0, -s), (0, s)] if s else [])

    @property
    def num_views(self) -> int:
        return len(self.offsets) * (2 if self.flip else 1)

    def describe(self) -> dict:
        return {"views": self.num_views, "flip": self.flip, "shift_px": self.shift}

    def views(self, x: torch.Tensor):
        size = self.cfg.input_size
        h, w = x.shape[-2:]
        margin = min((h - size) // 2, (w - size) // 2)
        if margin < 0:
            raise ValueError(f"input {h}x{w} is smaller than the model's {size}x{size}")
        pad = max(0, self.shift - margin)
        if pad:       # black pixels: each channel padded with its normalised 0
            x = torch.stack([F.pad(x[:, c], (pad,) * 4, value=-m / s)
                             for c, (m, s) in enumerate(zip(self.cfg.mean, self.cfg.std))], dim=1)
            h, w = h + 2 * pad, w + 2 * pad
        top0, left0 = (h - size) // 2, (w - size) // 2
        for dy, dx in self.offsets:
            crop = x[..., top0 + dy:top0 + dy + size, left0 + dx:left0 + dx + size]
            yield crop
            if self.flip:
                yield crop.flip(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.stack([logits_to_probs(self.model(view.contiguous()), self.cfg) for view in self.views(x)]).mean(0)
        p = p.clamp(1e-7, 1 - 1e-7)
        return torch.logit(p[:, 1:]) if self.cfg.binary else torch.log(p)
