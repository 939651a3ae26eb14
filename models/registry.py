"""Name -> constructor, and the small JSON-serializable config that rebuilds a model.

`ModelConfig` is what inference needs: the architecture and the preprocessing metadata
(input size, mean/std, labels). It is stored in a run's config.json next to the training
recipe, so `create_model(ModelConfig.from_dict(json.load(...)))` rebuilds the model with
no training code.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Callable

from torch import nn

from models.resnet import resnet50_binary
from models.vgg import VGG19BN


@dataclass(frozen=True)
class ModelConfig:
    architecture: str          # a key of ARCHITECTURES
    num_classes: int           # number of labels; a binary model has 2 labels and 1 output
    in_channels: int           # 1 (grayscale) or 3 (RGB)
    input_size: int            # square side in pixels that the model is fed
    mean: tuple[float, ...]    # per-channel normalisation, on the 0-1 scale
    std: tuple[float, ...]
    labels: tuple[str, ...]    # class names, index = class id
    resize_size: int | None = None  # evaluation: resize the shorter side to this, then
                                    # centre-crop input_size (None: resize to input_size)

    def __post_init__(self) -> None:
        # config.json comes from anywhere (a Hub repo): check types before using any value.
        _check_types(self)
        # JSON gives lists; keep tuples so the config stays hashable and immutable.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
        problems = []
        if not all(math.isfinite(v) for v in self.mean + self.std):
            problems.append("mean and std must be finite numbers")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"unknown architecture {self.architecture!r} "
                            f"(known: {', '.join(sorted(ARCHITECTURES))})")
        if self.in_channels not in (1, 3):
            problems.append(f"in_channels must be 1 or 3, not {self.in_channels!r}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            problems.append("mean and std need one value per input channel")
        if any(s <= 0 for s in self.std):
            problems.append("std values must be positive")
        if len(self.labels) != self.num_classes:
            problems.append(f"{len(self.labels)} labels for num_classes={self.num_classes}")
        if not isinstance(self.input_size, int) or self.input_size < 8:
            problems.append(f"input_size must be an integer >= 8, not {self.input_size!r}")
        if self.resize_size is not None and self.resize_size < self.input_size:
            problems.append("resize_size must be at least input_size")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def binary(self) -> bool:
        """A binary model has one output logit; sigmoid gives P(labels[1])."""
        return ARCHITECTURES[self.architecture].binary

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else self.num_classes

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Build from config.json; extra keys (recipe, versions, ...) are ignored."""
        names = [f.name for f in fields(cls) if f.name in d or f.default is MISSING]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"config is missing {', '.join(missing)}")
        return cls(**{n: d[n] for n in names})


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_types(cfg: "ModelConfig") -> None:
    problems = []
    if not isinstance(cfg.architecture, str):
        problems.append(f"architecture must be a string, not {cfg.architecture!r}")
    for name in ("num_classes", "in_channels", "input_size"):
        if not _is_int(getattr(cfg, name)):
            problems.append(f"{name} must be an integer, not {getattr(cfg, name)!r}")
    if cfg.resize_size is not None and not _is_int(cfg.resize_size):
        problems.append(f"resize_size must be an integer or null, not {cfg.resize_size!r}")
    for name in ("mean", "std"):
        value = getattr(cfg, name)
        if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
            problems.append(f"{name} must be a list of numbers, not {value!r}"[:120])
    if not isinstance(cfg.labels, (list, tuple)) or not all(isinstance(v, str) and v for v in cfg.labels):
        problems.append("labels must be a list of non-empty strings")
    if problems:
        raise ValueError("invalid model config: " + "; ".join(problems))


@dataclass(frozen=True)
class Architecture:
    build: Callable[[ModelConfig], nn.Module]
    binary: bool
    description: str


def _vgg19_bn(cfg: ModelConfig) -> nn.Module:
    if cfg.input_size != 32:
        raise ValueError("vgg19_bn_32 is built for 32x32 input")
    return VGG19BN(in_channels=cfg.in_channels, num_classes=cfg.num_classes)


def _resnet50_binary(cfg: ModelConfig) -> nn.Module:
    if cfg.num_classes != 2 or cfg.in_channels != 3:
        raise ValueError("resnet50_binary takes RGB input and exactly 2 labels")
    return resnet50_binary()


ARCHITECTURES: dict[str, Architecture] = {
    "vgg19_bn_32": Architecture(_vgg19_bn, binary=False,
                                description="VGG19 with batch norm for 32x32 input (16 conv layers, then a 512-512-classes head)"),
    "resnet50_binary": Architecture(_resnet50_binary, binary=True,
                                    description="torchvision ResNet50, fc replaced by one logit"),
}


def create_model(cfg: ModelConfig) -> nn.Module:
    """A freshly initialised model for `cfg` (no weights are downloaded)."""
    return ARCHITECTURES[cfg.architecture].build(cfg)
