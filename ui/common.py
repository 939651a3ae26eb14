"""Helpers shared by the tabs: reading an uploaded image, running a model, showing its input.

Every image a user sends goes through `models.predict.decode_image` (format allowlist,
pixel cap, EXIF orientation, every mode converted). The image events are wired with
`preprocess=False`, so Gradio hands over the request's value untouched; `read_image` reads
only a file Gradio stored for this app's uploads or a `data:` URL, whatever the value's shape
(bytes, PIL images and arrays, which only Python callers have, as they are). Files the app
chooses itself (samples) go to `decode_image` directly. Whichever way an image arrives, it is
refused above MAX_IMAGE_BYTES before a byte of it is decoded (base64 included).
"""
from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
import pandas as pd
import torch
from PIL import Image

from models.jsonfile import run_file, try_read_json
from models.predict import ImageInputError, decode_image, input_to_image, logits_to_probs, prepare
from models.registry import ModelConfig
from ui import serving
from ui.catalog import Catalog, ModelEntry, ModelUnavailable, code, missing_model_message, plain, train_command
from ui.inputs import is_empty, user_error  # noqa: F401  (re-exported: the tabs import them from here)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
# One byte limit for an image, however it arrives: an upload (Gradio's max_file_size, set from
# this in app.py), a data: URL or base64 text in a request, a file or bytes handed to read_image.
MAX_IMAGE_BYTES = 10 * 1024 * 1024
VIEW_SIZE = 256          # "what the model sees" is upscaled to this many pixels (nearest neighbour)

# Events that run a model share one concurrency group (their forward passes are combined and
# take turns, ui/serving.py); cheap events (cards, curves) get their own group and queue bound.
INFERENCE_CONCURRENCY = serving.INFERENCE.event_options()
LIGHT_CONCURRENCY = serving.LIGHT.event_options()


def read_image(value) -> Image.Image:
    """Any image input -> decoded RGB or L image; gr.Error with a one-line message if unusable."""
    try:
        if isinstance(value, dict):  # Gradio FileData payload (preprocess=False)
            value = value.get("path") or value.get("url") or ""
            if not value:
                raise ImageInputError("no image data received")
        if isinstance(value, (str, os.PathLike)):
            text = str(value)
            return decode_image(data_url_bytes(text) if text.startswith("data:") else upload_bytes(text))
        if isinstance(value, (bytes, bytearray, memoryview)):
            _check_bytes(len(value))
        return decode_image(value)
    except ImageInputError as e:
        raise user_error(f"Could not read the image: {e}") from e
    except (ValueError, TypeError, OSError) as e:  # e.g. malformed base64, odd array
        raise user_error(f"Could not read the image: {type(e).__name__}") from e


NO_FOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK
NOT_AN_UPLOAD = ("not a file uploaded to this app: upload it first (POST /gradio_api/upload) "
                 "or send the image as a data: URL")


def upload_path(path: str) -> str | None:
    """The real path of `path` when it lies inside Gradio's upload folder for this app, else None."""
    folder = os.path.realpath(get_upload_folder())
    try:
        real = os.path.realpath(path)
    except (ValueError, TypeError, OSError):    # a NUL byte, not text
        return None
    return real if real.startswith(folder + os.sep) else None


def upload_bytes(path: str) -> bytes:
    """The bytes of a regular file Gradio stored for this app's uploads, its size checked before reading.

    Anything else (a server path, a missing file, a folder, a link out, a FIFO, a device) gets the
    same message: the answer says nothing about what exists on the server. O_NONBLOCK: a FIFO opens
    at once instead of waiting for a writer."""
    with open_upload(path) as f:
        _check_bytes(os.fstat(f.fileno()).st_size)
        data = f.read(MAX_IMAGE_BYTES + 1)
    _check_bytes(len(data))
    return data


def open_upload(path: str):
    """A regular file Gradio stored for this app's uploads, opened without following a link
    (ImageInputError(NOT_AN_UPLOAD) for anything else); the caller checks its size."""
    try:
        f = open(upload_path(path) or "", "rb", opener=lambda name, flags: os.open(name, flags | NO_FOLLOW))
    except (OSError, TypeError, ValueError):
        raise ImageInputError(NOT_AN_UPLOAD) from None
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise ImageInputError(NOT_AN_UPLOAD)
    return f


def data_url_bytes(url: str) -> bytes:
    """The bytes of a `data:[<type>][;base64],<data>` URL, refused by size before decoding."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:"):
        raise ImageInputError("a data: URL needs a comma between its header and its data")
    if not header.endswith(";base64"):
        raise ImageInputError("only base64 data: URLs are accepted (data:image/png;base64,...)")
    # base64: 4 characters per 3 bytes; the size is known before anything is decoded.
    _check_bytes(len(payload) // 4 * 3)
    try:
        return base64.b64decode(payload)
    except binascii.Error as e:
        raise ImageInputError("the data: URL is not valid base64") from e


def _check_bytes(size: int) -> None:
    if size > MAX_IMAGE_BYTES:
        raise ImageInputError(f"the image is too large ({size / 2**20:.1f} MiB; "
                              f"at most {MAX_IMAGE_BYTES / 2**20:g} MiB)")


def sketch_image(sketch, editor: gr.Sketchpad | None = None):
    """The image to classify from a Sketchpad value: its composite (background + strokes).

    An API caller sends the composite as a file (a FileData dict, decoded like any upload).
    The browser does not: it uploads the canvas images through the editor's `accept_blobs`
    server function and the event carries only their id. Upstream limitation (Gradio 6.x,
    gr.ImageEditor): the only public way to get those bytes is `preprocess=True`, which opens
    them with `PIL.Image.open` (every format, decompression-bomb warnings silenced) before
    models.predict.decode_image could refuse them. So with preprocess=False the composite's
    bytes are taken from the editor's `blob_storage`, exactly as its own `preprocess` does,
    and decoded by decode_image like every upload. tests/test_ui_inputs.py fails if
    Gradio changes that storage.
    """
    if not isinstance(sketch, dict) or not ("composite" in sketch or "layers" in sketch or "id" in sketch):
        return sketch
    if not sketch.get("composite") and sketch.get("id") and editor is not None:
        blobs = editor.blob_storage.pop(sketch["id"], None)
        return getattr(blobs, "composite", None)
    return sketch.get("composite")


def get_model(catalog: Catalog, key: str | None, task: str, variant: str) -> ModelEntry:
    try:
        return catalog.get(key, task, variant)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


@torch.inference_mode()
def run_model(entry: ModelEntry, img: Image.Image) -> tuple[dict[str, float] | None, torch.Tensor | None]:
    """Probabilities over all labels (sum 1) and the normalised input tensor (C, S, S);
    (None, None) when the task's preparation finds nothing to classify (an empty drawing).

    The same steps as every other endpoint: models.predict.prepare (the task's own step, then the
    model's preprocessing), keeping the input to show it; concurrent calls on the same model share
    one forward pass (serving.ForwardBatcher).
    """
    loaded = entry.loaded
    cfg = loaded.config
    x, _ = prepare(img, cfg)
    if x is None:
        return None, None
    x = x.to(next(loaded.model.parameters()).device)
    probs = logits_to_probs(serving.batcher_for(loaded.model)(x), cfg)[0].double().cpu()
    probs = probs / probs.sum()
    return {label: float(p) for label, p in zip(cfg.labels, probs)}, x[0].cpu()


def model_view(x: torch.Tensor, cfg: ModelConfig, size: int = VIEW_SIZE) -> Image.Image:
    """A normalised input tensor (C, S, S) back to pixels, upscaled with nearest neighbour."""
    img = input_to_image(x, cfg)
    if img.width < size:
        img = img.resize((size, size), Image.NEAREST)
    return img


def model_input_view(caption: str, elem_id: str, height: int) -> gr.Image:
    """"What the model sees", with its caption above the picture: Gradio draws a block label
    over the top-left of an image, which hid the top of small inputs (a digit's top stroke)."""
    gr.Markdown(f"**{caption}**", elem_classes=["view-caption"], elem_id=f"{elem_id}-caption")
    return gr.Image(label=caption, show_label=False, format="png", interactive=False, height=height, buttons=[],
                    elem_id=elem_id)


def probs_frame(probs: dict[str, float] | None, labels=None) -> pd.DataFrame:
    """A bar-chart frame: one row per class, in label order (zeros before any answer).

    The class column is always text, so the chart's x axis stays categorical: an empty or
    numeric-looking column ("0".."9") would make Gradio switch it to a numeric axis."""
    names = list(probs) if probs is not None else list(labels or [])
    values = [round(p, 6) for p in probs.values()] if probs is not None else [0.0] * len(names)
    return pd.DataFrame({"class": pd.Series(names, dtype="string"),
                         "probability": pd.Series(values, dtype="float64")})


def probability_bars(labels, label: str, **kwargs) -> gr.BarPlot:
    """A bar chart of one probability per class, classes in label order on a categorical axis, 0-1.
    No fixed height: with one, Gradio 6 cuts off the class names and the axis title."""
    return gr.BarPlot(probs_frame(None, labels), x="class", y="probability", y_lim=[0, 1], sort=list(labels),
                      label=label, y_axis_format=".0%", **kwargs)


def run_examples(entry: ModelEntry | None, limit: int = 10) -> list[tuple[str, str]]:
    """(path, caption) for a run's examples/ (index.json order when present)."""
    if entry is None or entry.root is None:
        return []
    rows = try_read_json(entry.root, "examples/index.json")
    try:
        items = [(path, str(row.get("label", path.stem))) for row in rows
                 if (path := run_file(entry.root, f"examples/{Path(str(row.get('file', ''))).name}"))]
    except (TypeError, AttributeError):
        items = []
    folder = entry.root / "examples"
    if not items and folder.is_dir():
        items = [(p, p.stem) for p in sorted(folder.glob("*.png")) if run_file(folder, p.name)]
    return [(str(path), caption) for path, caption in items[:limit]]


def asset_examples(pattern: str, limit: int = 10) -> list[tuple[str, str]]:
    return [(str(p), p.stem.replace("_", " ")) for p in sorted(ASSETS_DIR.glob(pattern))][:limit]


def tab_header(catalog: Catalog, task: str, variants: tuple[str, ...], intro: str) -> None:
    """A model tab's opening: what it does, then the notice (if any) about missing or broken models
    (kept up to date when the catalog reloads)."""
    from ui import live
    gr.Markdown(intro)
    live.markdown(catalog, lambda: notice(catalog, task, variants), hide_empty=True, elem_classes=["notice"])


def notice(catalog: Catalog, task: str, variants: tuple[str, ...]) -> str:
    """Markdown for the top of a model tab: how to train what is missing, what failed to load."""
    lines = []
    for variant in variants:
        if catalog.default_key(task, variant) is None:
            command = train_command(task, variant)
            lines.append("⚠️ " + missing_model_message(task, variant).replace(command, f"`{command}`"))
    for e in catalog.unavailable(task):
        lines.append(f"⚠️ {code(e.key)} unavailable: {plain(e.error)}")
    return "\n\n".join(lines)
