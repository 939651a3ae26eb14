"""From an image (any format, mode, orientation or size) to class probabilities.

Preprocessing comes from the model's own config (input size, resize, mean/std, labels, the
task's preparation step), never from constants: `prepare` is the one path from an image to a
model input, for the app, See why, evaluation of image files and the Hub code (generated from
this module by publish/hub_code.py), so they all give the same answer.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from models.augment import EvalTransform
from models.digits import to_mnist_digit
from models.registry import ModelConfig

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
# Variants Pillow names differently: MPO is a camera JPEG with extra (preview/stereo) frames.
FORMAT_ALIASES = {"MPO": "JPEG"}
_ALLOWED_LIST = ", ".join(sorted(ALLOWED_FORMATS))   # for messages
# Well below Pillow's decompression-bomb limit (~89M pixels): an upload never needs more.
MAX_PIXELS = 40_000_000
MAX_BYTES = 64 * 1024 * 1024       # larger files are refused before they are read
# No limit on the shape: a 4000x8 strip is a legitimate image, and what the decoder needs to
# stay safe is the pixel count and the file size. The cost a strip could cause is in the
# resize (shorter side to 256 makes a 1x40M strip 10G pixels), so preprocessing first
# centre-crops the longer side to this many times the shorter: the model's square centre
# crop keeps far less than that, so the answer is the same image content.
MAX_RESIZE_ASPECT = 16

# Pillow warns (DecompressionBombWarning) above MAX_IMAGE_PIXELS and raises above twice that.
# Every image the warning fires for is over MAX_PIXELS anyway, so the warning is an error here.
# This is set once, process-wide: a per-call `warnings.catch_warnings()` is not thread-safe,
# and the app decodes uploads in several threads.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

# Formats refused by name when recognised (the decoders of these formats never run).
_SIGNATURES = [(b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
               (b"%PDF", "PDF"), (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"icns", "ICNS"),
               (b"P1", "PNM"), (b"P2", "PNM"), (b"P3", "PNM"), (b"P4", "PNM"), (b"P5", "PNM"), (b"P6", "PNM"),
               (b"\xff\x4f\xff\x51", "JPEG 2000"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
               (b"<svg", "SVG"), (b"<?xml", "SVG/XML"), (b"qoif", "QOI"), (b"DDS ", "DDS")]


class ImageInputError(ValueError):
    """An image that cannot be used; the message is one line meant for the user."""


def decode_image(source: bytes | str | os.PathLike | Image.Image | np.ndarray, *, draft: int | None = None) -> Image.Image:
    """Decode to an RGB or L image: format allowlist, size caps, EXIF orientation, first frame.

    `draft`: the side the image will be resized to. A JPEG is then decoded at the smallest of its
    1/2, 1/4, 1/8 scales that keeps both sides at least that large (the DCT does the first
    downscale, 2-8x less decoding for a photo kept at 256 px; benchmarks/folder_memory.py).

    The one decode path for everything a user (or a dataset folder) hands in. Raises
    ImageInputError, and nothing else, for anything unusable: empty, garbage, truncated,
    a format outside ALLOWED_FORMATS (whose decoders are never even tried), more than
    MAX_PIXELS pixels (checked from the header, before any pixel is decoded), a file over
    MAX_BYTES. RGBA/LA/PA/P with transparency are composited onto white; CMYK becomes RGB;
    16-bit grayscale is scaled to 0-255 (not clipped); float images are rescaled; mode 1
    becomes L; animations give their first frame.
    """
    try:
        if isinstance(source, np.ndarray):
            img = _from_array(source)
        elif isinstance(source, Image.Image):
            img = source
            _check_header(img)
            img.load()
        else:
            img = _open_bytes(_read(source), draft)
        img = ImageOps.exif_transpose(img)
        return _normalise_mode(img)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Raised by Image.open from the header alone, before any pixel is decoded.
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels; " if found else ""
        raise ImageInputError(f"the image is too large ({size}at most {MAX_PIXELS:,} pixels)") from e
    except UnidentifiedImageError as e:
        raise ImageInputError("not a readable image") from e
    except MemoryError as e:
        raise ImageInputError("the image is too large to decode") from e
    except Exception as e:  # decoders of damaged files raise many types (OSError, SyntaxError, struct.error, ...)
        raise ImageInputError(f"the image is damaged or truncated ({type(e).__name__}: {_one_line(e)})") from e


def _read(source: bytes | str | os.PathLike) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise ImageInputError(f"the file is too large ({size / 2**20:.0f} MiB; "
                                      f"at most {MAX_BYTES // 2**20} MiB)")
            data = path.read_bytes()
        except OSError as e:
            raise ImageInputError(f"cannot read the image file ({e.strerror or type(e).__name__})") from e
    else:
        raise ImageInputError(f"expected image bytes, a file, a PIL image or an array, not {type(source).__name__}")
    if not data:
        raise ImageInputError("the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageInputError(f"the file is too large ({len(data) / 2**20:.0f} MiB; at most {MAX_BYTES // 2**20} MiB)")
    return data


def _open_bytes(data: bytes, draft: int | None = None) -> Image.Image:
    """Open with only the allowed decoders, check the header's size, then decode frame 0."""
    try:
        img = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
    except UnidentifiedImageError:
        named = _sniff(data)
        if named:
            raise ImageInputError(f"unsupported image format {named}; use {_ALLOWED_LIST}") from None
        raise ImageInputError(f"not a readable image (expected {_ALLOWED_LIST})") from None
    _check_header(img)
    img.seek(0)  # first frame of an animation
    if draft and img.format in ("JPEG", "MPO"):
        img.draft(None, (draft, draft))
    img.load()
    return img


def _check_header(img: Image.Image) -> None:
    """The format (when the image names one) and the size, from the header alone."""
    fmt = FORMAT_ALIASES.get(img.format, img.format)
    if fmt and fmt not in ALLOWED_FORMATS:
        raise ImageInputError(f"unsupported image format {fmt}; use {_ALLOWED_LIST}")
    _check_size(img.size)


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageInputError(f"the image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageInputError(f"the image is too large ({width}x{height} pixels; at most {MAX_PIXELS:,} pixels)")


def _sniff(data: bytes) -> str | None:
    head = data[:16]
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ImageInputError(f"expected an image array (H, W) or (H, W, 1-4), got shape {arr.shape}")
    _check_size((arr.shape[1], arr.shape[0]))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ImageInputError(f"expected an array of numbers, got {arr.dtype}")
        arr = _rescale_to_uint8(arr)
    return Image.fromarray(np.ascontiguousarray(arr))


def _rescale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integers: kept if in 0-255, scaled from 0-65535 if 16-bit (never clipped); floats: 0-1
    scaled to 0-255; anything else stretched from its own min-max. NaN becomes the minimum."""
    integer = np.issubdtype(arr.dtype, np.integer)
    arr = arr.astype(np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
    if integer and lo >= 0 and hi <= 255:
        out = arr
    elif integer and lo >= 0 and hi <= 65535:
        out = arr / 257.0                       # 65535 -> 255
    elif not integer and lo >= 0 and hi <= 1:
        out = arr * 255.0
    else:
        out = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


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
    if img.mode.startswith("I") or img.mode == "F":
        # 16- and 32-bit samples (I;16*, I, F) scaled to 0-255 (Pillow's convert("L") would clip at 255).
        return Image.fromarray(_rescale_to_uint8(np.asarray(img)), mode="L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


# The task's own step between a decoded image and the model's preprocessing (config.json
# "preparation"). MNIST models were trained on white digits centred by mass in 28x28; a drawing
# or a photo of a digit is made so first.
PREPARATIONS = {"mnist_digit": to_mnist_digit}


def to_stored(img: Image.Image, channels: int, size: int) -> torch.Tensor:
    """A decoded image -> uint8 (C, size, size), as training keeps its images: the shorter side
    resized to `size` (antialiased), then the centred square."""
    x = TF.pil_to_tensor(img.convert("L" if channels == 1 else "RGB"))
    if x.shape[-2:] != (size, size):
        x = TF.resize(_crop_long_side(x), [size], antialias=True)
        x = TF.center_crop(x, [size, size])
    return x


def stored_image(image, cfg: ModelConfig, *, task_step: bool = True) -> tuple[torch.Tensor | None, Image.Image | None]:
    """Any image input -> (uint8 (C, S, S) as training keeps its images, the image after the task's
    step): decode (caps, EXIF, modes), the task's step (`task_step`), `to_stored`. (None, None) when
    the task's step finds nothing to classify (an empty drawing); the digit step raises
    models.digits.NotADigit (a ValueError, one line) for marks that are not one digit."""
    step = PREPARATIONS[cfg.preparation] if task_step and cfg.preparation else None
    img = decode_image(image, draft=None if step else cfg.stored_size)
    if step:
        img = step(img)
        if img is None:
            return None, None
    return to_stored(img, cfg.in_channels, cfg.stored_size), img


def prepare(image, cfg: ModelConfig, *, task_step: bool = True) -> tuple[torch.Tensor | None, Image.Image | None]:
    """Any image input -> (the normalised (1, C, S, S) input the model is evaluated on, the image it
    came from after the task's step). The one preparation of the app, See why, the augmentation
    tab, evaluation of image files and the Hub code: `stored_image`, then evaluation's centre crop
    and normalisation (models.augment.EvalTransform). (None, None) when there is nothing to classify."""
    stored, img = stored_image(image, cfg, task_step=task_step)
    if stored is None:
        return None, None
    return EvalTransform.from_config(cfg)(stored.unsqueeze(0)), img


def denormalize(x: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """The inverse of the normalisation: float (C, S, S) model input -> uint8 (C, S, S) pixels."""
    mean = torch.tensor(cfg.mean).view(-1, 1, 1)
    std = torch.tensor(cfg.std).view(-1, 1, 1)
    return ((x.detach().float().cpu() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)


pixels_to_image = TF.to_pil_image   # uint8 (C, H, W) -> an L (one channel) or RGB image


def input_to_image(x: torch.Tensor, cfg: ModelConfig) -> Image.Image:
    """A normalised model input (C, S, S) back to an RGB or L image of the same size."""
    return pixels_to_image(denormalize(x, cfg))


def _crop_long_side(batch: torch.Tensor) -> torch.Tensor:
    """Centre-crop the longer side to MAX_RESIZE_ASPECT times the shorter (see its comment)."""
    height, width = batch.shape[-2:]
    longest = min(height, width) * MAX_RESIZE_ASPECT
    if max(height, width) <= longest:
        return batch
    return TF.center_crop(batch, [min(height, longest), min(width, longest)])


def logits_to_probs(logits: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """(N, outputs) logits -> (N, num_classes) probabilities. Sigmoid is applied here, once."""
    logits = logits.float()
    if cfg.binary:
        p = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, cfg: ModelConfig, image, *, task_step: bool = True) -> dict[str, float]:
    """Any image input -> {label: probability} over all labels, summing to 1 (the app's answer)."""
    x, _ = prepare(image, cfg, task_step=task_step)
    if x is None:
        raise ImageInputError("nothing to classify: the image holds no visible mark")
    probs = logits_to_probs(model(x.to(next(model.parameters()).device)), cfg)[0].cpu()
    return {label: float(p) for label, p in zip(cfg.labels, probs)}
