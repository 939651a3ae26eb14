"""Architectures by name, and the small JSON config that rebuilds a model with no training code.

`ModelConfig` is what inference needs: the architecture, the input (channels, size, resize,
mean/std), the labels and the task's own image preparation. It is stored in a run's
config.json next to the training recipe, in timm's layout (`architecture`, `num_classes`,
`pretrained_cfg`), so `create_model(ModelConfig.from_dict(json.load(...)))` rebuilds the model
and, for an architecture timm knows (`timm_name`), `timm.create_model("hf-hub:user/repo",
pretrained=True)` does too.

The head follows from the labels: two labels give one logit (sigmoid gives P(labels[1]),
trained with BCEWithLogitsLoss), more give one logit per class (softmax). An architecture is
added with one `register_architecture(...)` (docs/adding-a-task.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from torch import nn

from models.resnet import resnet50
from models.vgg import VGG19BN


@dataclass(frozen=True)
class Architecture:
    build: Callable[["ModelConfig"], nn.Module]
    title: str                     # how cards and the app name it
    description: str
    gradcam_layer: str             # the module Grad-CAM weighs (model.get_submodule), the last conv stage
    gradcam_grid: str              # what that layer's map is, for captions
    reference: str = ""            # the paper, one line of markdown
    bibtex: str = ""
    timm_name: str | None = None   # the timm architecture with the same state dict, if any
    input_sizes: tuple[int, ...] = ()   # the only input sizes it is built for (empty: any >= 8)
    channels: tuple[int, ...] = (1, 3)  # the input channels it is built for


ARCHITECTURES: dict[str, Architecture] = {}
ALIASES = {"resnet50_binary": "resnet50"}   # names of earlier releases


def register_architecture(name: str, architecture: Architecture) -> Architecture:
    ARCHITECTURES[name] = architecture
    return architecture


@dataclass(frozen=True)
class ModelConfig:
    architecture: str               # a key of ARCHITECTURES
    in_channels: int                # 1 (grayscale) or 3 (RGB)
    input_size: int                 # square side in pixels that the model is fed
    mean: tuple[float, ...]         # per-channel normalisation, on the 0-1 scale
    std: tuple[float, ...]
    labels: tuple[str, ...]         # class names, index = class id
    resize_size: int | None = None  # shorter side resized to this, then centre-cropped to input_size
    preparation: str | None = None  # the task's step before preprocessing (models.predict.PREPARATIONS)

    def __post_init__(self) -> None:
        # config.json comes from anywhere (a Hub repo): check types before using any value.
        problems = _type_problems(self)
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))
        object.__setattr__(self, "architecture", ALIASES.get(self.architecture, self.architecture))
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        object.__setattr__(self, "labels", tuple(self.labels))
        problems = _value_problems(self)
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def binary(self) -> bool:
        """Two labels: one output logit, sigmoid gives P(labels[1])."""
        return len(self.labels) == 2

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else len(self.labels)

    @property
    def stored_size(self) -> int:
        """The square side images are kept at (training data) and resized to (inference) before the crop."""
        return self.resize_size or self.input_size

    def to_dict(self) -> dict:
        """config.json's model keys: ours, and timm's (`num_classes` counts outputs, as timm builds them)."""
        size, arch = self.input_size, ARCHITECTURES[self.architecture]
        return {"architecture": self.architecture, "num_classes": self.num_outputs, "in_channels": self.in_channels,
                "input_size": size, "resize_size": self.resize_size, "mean": list(self.mean),
                "std": list(self.std), "labels": list(self.labels), "preparation": self.preparation,
                "pretrained_cfg": {"architecture": arch.timm_name or self.architecture,
                                   "input_size": [self.in_channels, size, size], "mean": list(self.mean),
                                   "std": list(self.std), "crop_pct": round(size / self.stored_size, 6),
                                   "crop_mode": "center", "interpolation": "bilinear",
                                   "num_classes": self.num_outputs, "label_names": list(self.labels)}}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """From config.json; other keys (recipe, versions, ...) are ignored."""
        missing = [k for k in ("architecture", "in_channels", "input_size", "mean", "std", "labels") if k not in d]
        if missing:
            raise ValueError(f"config is missing {', '.join(missing)}")
        cfg = cls(d["architecture"], d["in_channels"], d["input_size"], d["mean"], d["std"], d["labels"],
                  d.get("resize_size"), d.get("preparation"))
        outputs = d.get("num_classes", cfg.num_outputs)
        if not _is_int(outputs):
            raise ValueError(f"invalid model config: num_classes must be an integer, not {outputs!r}"[:120])
        if outputs not in (cfg.num_outputs, cfg.num_classes):
            raise ValueError(f"invalid model config: num_classes {outputs} does not fit {cfg.num_classes} labels")
        return cfg


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(v) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _type_problems(cfg: ModelConfig) -> list[str]:
    checks = [("architecture", isinstance(cfg.architecture, str), "a string"),
              ("in_channels", _is_int(cfg.in_channels), "an integer"),
              ("input_size", _is_int(cfg.input_size), "an integer"),
              ("resize_size", cfg.resize_size is None or _is_int(cfg.resize_size), "an integer or null"),
              ("mean", _numbers(cfg.mean), "a list of numbers"), ("std", _numbers(cfg.std), "a list of numbers"),
              ("labels", isinstance(cfg.labels, (list, tuple)) and all(isinstance(v, str) and v for v in cfg.labels),
               "a list of non-empty strings"),
              ("preparation", cfg.preparation is None or isinstance(cfg.preparation, str), "a name or null")]
    return [f"{name} must be {what}, not {getattr(cfg, name)!r}"[:120] for name, ok, what in checks if not ok]


def _value_problems(cfg: ModelConfig) -> list[str]:
    problems = []
    if not all(math.isfinite(v) for v in cfg.mean + cfg.std):
        problems.append("mean and std must be finite numbers")
    arch = ARCHITECTURES.get(cfg.architecture)
    if arch is None:
        problems.append(f"unknown architecture {cfg.architecture!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    elif arch.input_sizes and cfg.input_size not in arch.input_sizes:
        problems.append(f"{cfg.architecture} is built for {' or '.join(map(str, arch.input_sizes))} px input")
    if cfg.in_channels not in (arch.channels if arch else (1, 3)):
        problems.append(f"in_channels must be {' or '.join(map(str, arch.channels if arch else (1, 3)))}, "
                        f"not {cfg.in_channels!r}")
    if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
        problems.append("mean and std need one value per input channel")
    if any(s <= 0 for s in cfg.std):
        problems.append("std values must be positive")
    if len(cfg.labels) < 2 or len(set(cfg.labels)) != len(cfg.labels):
        problems.append("labels must be at least two different names")
    if cfg.input_size < 8:
        problems.append(f"input_size must be at least 8, not {cfg.input_size}")
    if cfg.resize_size is not None and cfg.resize_size < cfg.input_size:
        problems.append("resize_size must be at least input_size")
    return problems


def create_model(cfg: ModelConfig) -> nn.Module:
    """A freshly initialised model for `cfg` (no weights are downloaded)."""
    return ARCHITECTURES[cfg.architecture].build(cfg)


register_architecture("vgg19_bn_32", Architecture(
    build=lambda cfg: VGG19BN(in_channels=cfg.in_channels, num_classes=cfg.num_outputs),
    title="VGG19-BN", input_sizes=(32,),
    description="VGG19 with batch norm for 32x32 input (16 conv layers, then a 512-512-classes head)",
    gradcam_layer="features.51", gradcam_grid="the last conv block of features (a 2x2 grid at 32x32)",
    reference="K. Simonyan, A. Zisserman. *Very Deep Convolutional Networks for Large-Scale Image "
              "Recognition*. ICLR 2015. [arXiv:1409.1556](https://arxiv.org/abs/1409.1556)",
    bibtex="""@inproceedings{simonyan2015vgg,
  title     = {Very Deep Convolutional Networks for Large-Scale Image Recognition},
  author    = {Simonyan, Karen and Zisserman, Andrew},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2015},
  url       = {https://arxiv.org/abs/1409.1556}
}"""))

register_architecture("resnet50", Architecture(
    build=lambda cfg: resnet50(num_outputs=cfg.num_outputs), channels=(3,),
    title="ResNet50", description="torchvision's ResNet50, its fc replaced by one output per class "
                                  "(one logit for two classes)",
    gradcam_layer="layer4", gradcam_grid="layer4 (a 7x7 grid at 224x224)", timm_name="resnet50",
    reference="K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image Recognition*. CVPR 2016. "
              "[arXiv:1512.03385](https://arxiv.org/abs/1512.03385)",
    bibtex="""@inproceedings{he2016resnet,
  title     = {Deep Residual Learning for Image Recognition},
  author    = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {770--778},
  year      = {2016},
  url       = {https://arxiv.org/abs/1512.03385}
}"""))
