"""From an image (any format, mode, orientation or size) to class probabilities.

Preprocessing comes from the model's own config (input size, resize, mean/std, labels),
never from constants, so the same code serves every model and matches evaluation.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from models.registry import ModelConfig

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
# Well below Pillow's decompression-bomb limit (~89M pixels): an upload never needs more.
MAX_PIXELS = 40_000_000


class ImageInputError(ValueError):
    """An image that cannot be used; the message is one line meant for the user."""


def decode_image(source: bytes | str | os.PathLike | Image.Image | np.ndarray) -> Image.Image:
    """Decode to an RGB or L image: format allowlist, pixel cap, EXIF orientation, first frame.

    RGBA/LA/P with transparency are composited onto white; CMYK becomes RGB; 16-bit and
    float grayscale are rescaled to 0-255 (not clipped); mode 1 becomes L.
    """
    if isinstance(source, np.ndarray):
        return _normalise_mode(_from_array(source))
    if isinstance(source, Image.Image):
        return _normalise_mode(ImageOps.exif_transpose(source))
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise ImageInputError(f"cannot read the image file: {e.strerror or e}") from e
    if not data:
        raise ImageInputError("the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise ImageInputError(f"unsupported image format {img.format or 'unknown'}; "
                                      f"use {', '.join(sorted(ALLOWED_FORMATS))}")
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageInputError(f"the image is too large ({width}x{height} pixels; "
                                      f"at most {MAX_PIXELS:,} pixels)")
            if width < 1 or height < 1:
                raise ImageInputError("the image has no pixels")
            img.seek(0)  # first frame of an animation
            img.load()
        except ImageInputError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageInputError(f"not a readable image ({type(e).__name__})") from e
        except (OSError, ValueError, SyntaxError, EOFError, struct.error) as e:
            raise ImageInputError(f"the image is damaged or truncated ({e})") from e
    return _normalise_mode(ImageOps.exif_transpose(img))


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ImageInputError(f"expected an image array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = _rescale_to_uint8(arr.astype(np.float64))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def _rescale_to_uint8(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    if hi <= 1.0 and lo >= 0.0:  # a 0-1 float image
        return np.round(np.nan_to_num(arr) * 255).astype(np.uint8)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((np.nan_to_num(arr, nan=lo) - lo) * scale).astype(np.uint8)


def _normalise_mode(img: Image.Image) -> Image.Image:
    if img.mode in ("RGB", "L"):
        return img
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return Image.fromarray(_rescale_to_uint8(np.asarray(img, dtype=np.float64)), mode="L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def to_model_input(img: Image.Image, cfg: ModelConfig) -> torch.Tensor:
    """A decoded image -> normalised float tensor (1, C, S, S) as the model was evaluated."""
    img = img.convert("L" if cfg.in_channels == 1 else "RGB")
    x = TF.pil_to_tensor(img)  # uint8 (C, H, W)
    return preprocess_uint8(x.unsqueeze(0), cfg)


def preprocess_uint8(batch: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, S, S): resize shorter side, centre crop, normalise."""
    resize = cfg.resize_size or cfg.input_size
    if batch.shape[-2:] != (cfg.input_size, cfg.input_size):
        batch = TF.resize(batch, [resize], antialias=True)
        batch = TF.center_crop(batch, [cfg.input_size, cfg.input_size])
    mean = torch.tensor(cfg.mean, device=batch.device).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std, device=batch.device).view(1, -1, 1, 1)
    return (batch.float() / 255.0 - mean) / std


def logits_to_probs(logits: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(N, outputs) logits -> (N, num_classes) probabilities. Sigmoid is applied here, once."""
    logits = logits.float()
    if cfg.binary:
        p = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, cfg: ModelConfig, image) -> dict[str, float]:
    """Any image input -> {label: probability} over all labels, summing to 1."""
    img = image if isinstance(image, Image.Image) and image.mode in ("RGB", "L") else decode_image(image)
    device = next(model.parameters()).device
    x = to_model_input(img, cfg).to(device)
    probs = logits_to_probs(model(x), cfg)[0].cpu()
    return {label: float(p) for label, p in zip(cfg.labels, probs)}
