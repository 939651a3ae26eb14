"""What the tabs share: the image inputs and how an image a user sends is read.

Every image a user sends goes through `models.predict.decode_image` (format allowlist,
pixel cap, EXIF orientation, every mode converted). Gradio's own Image and Sketchpad
preprocessing would open the file the request names with PIL first, so image inputs are
`UploadedImage` / `UploadedSketch`: the same components, handing the request's value over
unopened; `read_image` reads only a file Gradio stored for this app's uploads or a `data:` URL,
whatever the value's shape (bytes, PIL images and arrays, which only Python callers have, as
they are). Every other input of an event is preprocessed by Gradio. Files the app chooses
itself (samples) go to `decode_image` directly. Whichever way an image arrives, it is refused
above MAX_IMAGE_BYTES before a byte of it is decoded (base64 included).
"""
from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from models.predict import ImageInputError, decode_image
from ui import serving
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
        if isinstance(value, dict):  # Gradio FileData payload
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


class UploadedImage(gr.Image):
    """gr.Image whose value reaches the handler as the request sent it: a FileData dict (or None),
    its file unopened, for `read_image`. Drawn by Gradio's own Image frontend."""
    is_template = True

    def preprocess(self, payload):
        return None if payload is None else payload.model_dump()


class UploadedSketch(gr.Sketchpad):
    """gr.Sketchpad whose value reaches the handler as its composite, unopened: the bytes the
    browser uploaded for it (through the editor's `accept_blobs`, taken once from its
    `blob_storage` as Gradio's own preprocess does), or an API caller's FileData dict."""
    is_template = True

    def get_block_name(self) -> str:
        return "imageeditor"          # the frontend component gr.Sketchpad itself uses

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.id is not None:
            blobs = self.blob_storage.pop(payload.id, None)
            return getattr(blobs, "composite", None)
        return None if payload.composite is None else payload.composite.model_dump()


def get_model(catalog, key: str | None, task: str, variant: str):
    """The catalog's model for a run key (None: the task's default for the variant), or a gr.Error saying why not."""
    from ui.catalog import ModelUnavailable
    try:
        return catalog.get(key, task, variant)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e
