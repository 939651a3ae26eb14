"""The app's shared input helpers (ui/common.py) against the Gradio they depend on.

`sketch_image` reads a drawing's composite from the Sketchpad's `blob_storage`, where the
component's own `accept_blobs` server function puts what the browser uploads (an upstream
limitation, explained in ui/common.py). These tests call that real server function, so they
fail as soon as Gradio stores the blobs differently.
"""
from __future__ import annotations

import io

import gradio as gr
from gradio.components.image_editor import AcceptBlobs
from PIL import Image, ImageDraw

from ui.common import read_image, sketch_image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _browser_upload(editor: gr.Sketchpad, blob_id: str, composite: bytes) -> None:
    """What the browser's editor does before the event fires: one accept_blobs call per image."""
    editor.accept_blobs(AcceptBlobs(data={"type": "composite", "index": None, "file": b"", "id": blob_id},
                                    files=[("composite.png", composite)]))


def test_a_drawn_composite_is_read_from_the_sketchpads_uploaded_blobs():
    drawing = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).line([(32, 8), (32, 56)], fill=(0, 0, 0, 255), width=6)
    editor = gr.Sketchpad(type="filepath")
    _browser_upload(editor, "abc123", _png(drawing))

    composite = sketch_image({"id": "abc123", "background": None, "layers": [], "composite": None}, editor)
    img = read_image(composite)                                     # through models.predict.decode_image
    assert img.size == (64, 64)
    assert img.getpixel((32, 32)) in (0, (0, 0, 0))               # the stroke
    assert img.getpixel((5, 5)) in (255, (255, 255, 255))         # transparent flattened onto white
    assert "abc123" not in editor.blob_storage                     # taken once, as Gradio's preprocess does


def test_an_api_callers_composite_file_is_used_as_sent():
    payload = {"path": "/some/where.png", "meta": {"_type": "gradio.FileData"}}
    assert sketch_image({"background": None, "layers": [], "composite": payload}) == payload
    assert sketch_image({"id": "unknown", "composite": None}, gr.Sketchpad()) is None
