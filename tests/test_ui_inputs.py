"""The app's image inputs (ui/common.py) against the Gradio they depend on.

`UploadedImage` and `UploadedSketch` hand an image over unopened: Gradio's own preprocessing
would open the file a request names with PIL before models.predict.decode_image could refuse it.
A drawing's composite comes from the Sketchpad's `blob_storage`, where the component's own
`accept_blobs` server function puts what the browser uploads; these tests call that real server
function, so they fail as soon as Gradio stores the blobs differently.
"""
from __future__ import annotations

import io

import gradio as gr
import pytest
from gradio.components.image_editor import AcceptBlobs, EditorData
from gradio.data_classes import ImageData
from PIL import Image, ImageDraw

from ui.common import UploadedImage, UploadedSketch, read_image


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
    editor = UploadedSketch(type="filepath")
    _browser_upload(editor, "abc123", _png(drawing))

    composite = editor.preprocess(EditorData(id="abc123"))
    img = read_image(composite)                                     # through models.predict.decode_image
    assert img.size == (64, 64)
    assert img.getpixel((32, 32)) in (0, (0, 0, 0))               # the stroke
    assert img.getpixel((5, 5)) in (255, (255, 255, 255))         # transparent flattened onto white
    assert "abc123" not in editor.blob_storage                     # taken once, as Gradio's preprocess does
    assert editor.preprocess(EditorData(id="unknown")) is None


def test_an_api_callers_file_is_handed_over_unopened():
    """A path the request names reaches the handler as sent (read_image then refuses what is not an
    upload of this app), never opened by PIL on the way."""
    payload = {"path": "/some/where.png", "meta": {"_type": "gradio.FileData"}}
    sketch = UploadedSketch().preprocess(EditorData(composite=payload))
    image = UploadedImage().preprocess(ImageData(**payload))
    for value in (sketch, image):
        assert value["path"] == "/some/where.png"
        with pytest.raises(gr.Error, match="not a file uploaded to this app"):
            read_image(value)
    assert UploadedImage().preprocess(None) is None and UploadedSketch().preprocess(EditorData()) is None


def test_the_page_draws_them_with_gradios_own_components():
    """The frontend knows no UploadedImage: the page is told to draw Gradio's Image and ImageEditor."""
    assert UploadedImage().get_block_name() == "image"
    assert UploadedSketch().get_block_name() == gr.Sketchpad().get_block_name() == "imageeditor"
