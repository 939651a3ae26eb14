"""Why a model answers as it does: Grad-CAM heatmaps and occlusion (erase-box) sweeps.

Grad-CAM (Selvaraju et al. 2017) is computed with captum's `LayerGradCam` at the last conv
stage of each architecture (`Architecture.gradcam_layer`) and upsampled to the input size with
`LayerAttribution.interpolate`. It explains one class score:

- multi-class models (VGG19-BN): the logit of the class (before softmax);
- the one-logit binary model (ResNet50, P(dog) = sigmoid(logit)): the logit for class 1
  ("dog") and its negation for class 0 ("cat"), since sigmoid(-logit) = P(cat). So both
  classes are explained the same way and a map for "cat" highlights cat evidence.

The occlusion sweep slides an erase box over the model input and records P(class) at each
position: where covering the image changes the answer, the model was looking there. It is
what Random Erasing trains a model to withstand, so the app shows it for the baseline and
the Random Erasing model side by side.

Everything works on the normalised model input (N, C, S, S) as `models.predict.prepare`
makes it; `explain_image` goes from any image to a heatmap in one call.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.augment import normalize
from models.predict import input_to_image, logits_to_probs, prepare
from models.registry import ARCHITECTURES, ModelConfig

FILLS = ("mean", "black", "noise")


def gradcam_layer(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """The module Grad-CAM weighs: the architecture's last conv stage (models.registry)."""
    return model.get_submodule(ARCHITECTURES[cfg.architecture].gradcam_layer)


def class_scores(model: nn.Module, cfg: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    """One score per class, whatever the head: the logits, or (-logit, logit) for a one-logit model.

    For the binary model, score[c] is the log-odds of class c: sigmoid(score[c]) = P(c).
    """
    logits = model(x).float()
    return torch.cat([-logits, logits], dim=1) if cfg.binary else logits


def resolve_target(cfg: ModelConfig, target: int | str | None, probs: torch.Tensor) -> torch.Tensor:
    """Class ids (N,) for `target`: a class index, a label name, or None for the predicted class."""
    if target is None:
        return probs.argmax(dim=1)
    if isinstance(target, str) and target not in cfg.labels:
        raise ValueError(f"unknown class {target!r}; the model knows {', '.join(cfg.labels)}")
    index = cfg.labels.index(target) if isinstance(target, str) else int(target)
    if not 0 <= index < cfg.num_classes:
        raise ValueError(f"class index {index} out of range 0..{cfg.num_classes - 1}")
    return torch.full((probs.shape[0],), index, dtype=torch.long, device=probs.device)


def gradcam(model: nn.Module, cfg: ModelConfig, x: torch.Tensor, target: int | str | None = None, *,
            layer: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Grad-CAM of normalised inputs `x` (N, C, S, S) for `target` (None: the predicted class) at
    `layer` (default: the architecture's last conv stage).

    Returns (maps, classes, probs): maps (N, S, S) float32, ReLU-ed (>= 0, not rescaled),
    bilinearly upsampled from the layer's grid to the input size; classes (N,) the explained
    class ids; probs (N, num_classes) the model's probabilities for `x`.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    was_training = model.training
    model.eval()
    try:
        scores_fn = functools.partial(class_scores, model, cfg)
        with torch.no_grad():
            scores = scores_fn(x)
            probs = logits_to_probs(scores[:, 1:] if cfg.binary else scores, cfg)
        classes = resolve_target(cfg, target, probs)
        with torch.enable_grad():
            cam = LayerGradCam(scores_fn, layer if layer is not None else gradcam_layer(model, cfg))
            attr = cam.attribute(x, target=classes.tolist(), relu_attributions=True)
        maps = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    finally:
        model.train(was_training)
    maps = torch.nan_to_num(maps[:, 0].float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    return maps.cpu(), classes.cpu(), probs.cpu()


@dataclass
class GradCamResult:
    heatmap: np.ndarray            # (S, S) float32 in [0, 1] (the map divided by its maximum)
    raw_max: float                 # the map's maximum before scaling (0: no positive evidence)
    target: int                    # the explained class id
    label: str                     # its name
    probs: dict[str, float]        # the model's probabilities for the image
    view: Image.Image              # what the model sees: the preprocessed input as pixels (S x S)


def explain_image(model: nn.Module, cfg: ModelConfig, image, target: int | str | None = None) -> GradCamResult:
    """Any image (path, bytes, PIL, array) -> Grad-CAM of `target` (None: the predicted class)."""
    x = prepare(image, cfg, task_step=False)[0].to(next(model.parameters()).device)  # the caller did the task's step
    maps, classes, probs = gradcam(model, cfg, x, target)
    raw = maps[0].numpy()
    peak = float(raw.max())
    cls = int(classes[0])
    return GradCamResult(heatmap=(raw / peak if peak > 0 else np.zeros_like(raw)).astype(np.float32), raw_max=peak,
                         target=cls, label=cfg.labels[cls], probs=dict(zip(cfg.labels, map(float, probs[0]))),
                         view=input_to_image(x[0].cpu(), cfg))


def overlay(image: Image.Image, heatmap: np.ndarray, *, alpha: float = 0.5, size: int | None = None) -> Image.Image:
    """The heatmap (H, W) in colour (matplotlib's jet) over `image`, as RGB.

    The heatmap is scaled to [0, 1] by its maximum (an all-zero map leaves the image as it is)
    and resized to the image; with `size`, both are enlarged to size x size first
    (nearest neighbour for the image, so 32x32 pixels stay visible; bilinear for the map).
    """
    from matplotlib import colormaps

    img = image.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0, None)
    peak = float(heat.max()) if heat.size else 0.0
    if peak <= 0:
        return img
    heat = np.clip(np.asarray(Image.fromarray(heat / peak, mode="F").resize(img.size, Image.BILINEAR)), 0, 1)
    # Stronger colour where the map is high, so low-evidence regions keep the photo visible.
    weight = alpha * heat[..., None]
    out = np.asarray(img, dtype=np.float32) / 255 * (1 - weight) + colormaps["jet"](heat)[..., :3] * weight
    return Image.fromarray((out * 255).round().clip(0, 255).astype(np.uint8))


def erase(x: torch.Tensor, box: tuple[int, int, int, int], cfg: ModelConfig, fill: str | float = "mean",
          seed: int = 0) -> torch.Tensor:
    """A copy of normalised inputs `x` (N, C, S, S) with the box (top, left, height, width) erased.

    fill: "mean" (0 after normalisation: the dataset's mean colour), "black" (pixel value 0),
    "noise" (standard-normal values after normalisation, Random Erasing's fill; seeded), or
    a number (the normalised value).
    """
    top, left, h, w = (max(0, int(v)) for v in box)
    out = x.clone()
    region = out[..., top:top + h, left:left + w]     # slicing keeps the box inside the image
    if fill == "mean":
        region.zero_()
    elif fill == "black":   # pixel value 0, normalised as every model input is
        region.copy_(normalize(torch.zeros_like(region, dtype=torch.uint8), cfg.mean, cfg.std))
    elif fill == "noise":
        region.copy_(torch.randn(region.shape, generator=torch.Generator().manual_seed(seed)).to(x.device, x.dtype))
    elif isinstance(fill, (int, float)) and not isinstance(fill, bool):
        region.fill_(float(fill))
    else:
        raise ValueError(f"fill must be one of {', '.join(FILLS)} or a number, not {fill!r}")
    return out


@dataclass
class OcclusionMap:
    probs: np.ndarray       # (rows, cols): P(class) with the box at each position
    tops: list[int]         # box top edge of each row
    lefts: list[int]        # box left edge of each column
    box: int                # box side in input pixels
    base: float             # P(class) of the unoccluded input
    class_index: int
    label: str

    def pixel_map(self, size: int) -> np.ndarray:
        """(size, size): for each input pixel, the mean P(class) over the box positions covering
        it (the unoccluded P where no box reaches)."""
        total, count = np.zeros((size, size)), np.zeros((size, size))
        for r, top in enumerate(self.tops):
            for c, left in enumerate(self.lefts):
                total[top:top + self.box, left:left + self.box] += self.probs[r, c]
                count[top:top + self.box, left:left + self.box] += 1
        return np.where(count > 0, total / np.maximum(count, 1), self.base).astype(np.float32)

    def most_sensitive(self) -> tuple[int, int, float]:
        """(top, left, P) of the box position that lowers P(class) most."""
        r, c = np.unravel_index(int(np.argmin(self.probs)), self.probs.shape)
        return self.tops[r], self.lefts[c], float(self.probs[r, c])


def sweep_positions(size: int, box: int, stride: int) -> list[int]:
    """Box start positions along one side: every `stride` pixels, the last one flush with the edge."""
    if box <= 0 or stride <= 0:
        raise ValueError("box and stride must be positive")
    box = min(box, size)
    starts = list(range(0, size - box + 1, stride))
    return starts if starts[-1] == size - box else starts + [size - box]


@torch.inference_mode()
def occlusion_sweep(model: nn.Module, cfg: ModelConfig, x: torch.Tensor, *, box: int | None = None,
                    stride: int | None = None, class_index: int | str | None = None,
                    fill: str | float = "mean", seed: int = 0, batch_size: int = 16) -> OcclusionMap:
    """Slide a box x box erase box over one normalised input `x` (1, C, S, S) or (C, S, S).

    Returns P(class_index) at every box position (class_index: an index, a label, or None for
    the last class, i.e. P(dog) for cats vs dogs). Defaults: box = S/4, stride = box/2.
    """
    model.eval()
    x = x.unsqueeze(0) if x.ndim == 3 else x
    size = x.shape[-1]
    box = max(1, min(box or size // 4, size))
    stride = max(1, stride or box // 2)
    cls = cfg.num_classes - 1 if class_index is None else \
        cfg.labels.index(class_index) if isinstance(class_index, str) else int(class_index)
    tops, lefts = sweep_positions(x.shape[-2], box, stride), sweep_positions(size, box, stride)
    positions = [(t, l) for t in tops for l in lefts]
    # One batch of occluded copies at a time: all of them at once is positions x the input (50,176
    # copies of a 224x224 input for a 1-pixel box, ~30 GB).
    probs = [logits_to_probs(model(torch.cat([erase(x, (t, l, box, box), cfg, fill, seed)
                                              for t, l in positions[i:i + batch_size]])), cfg)[:, cls].cpu()
             for i in range(0, len(positions), batch_size)]
    base = float(logits_to_probs(model(x), cfg)[0, cls])
    return OcclusionMap(probs=torch.cat(probs).double().numpy().reshape(len(tops), len(lefts)), tops=tops,
                        lefts=lefts, box=box, base=base, class_index=cls, label=cfg.labels[cls])
