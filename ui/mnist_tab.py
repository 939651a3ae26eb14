"""MNIST tab: draw a digit (or upload one); it is turned into MNIST-like input and classified.

MNIST digits are white on black, size-normalised to fit a 20x20 box (aspect kept) and
centred by centre of mass in a 28x28 field. A drawing is dark strokes on a transparent
canvas, at any size and position, so `to_mnist_digit` reproduces those steps; the model's
own preprocessing (from its config.json) then resizes 28x28 to its 32x32 input.
"""
from __future__ import annotations


import gradio as gr
import numpy as np
from PIL import Image

from models.runs import BASELINE
from ui import explain_tab, inputs
from ui.catalog import Catalog
from ui.common import (INFERENCE_CONCURRENCY, asset_examples, get_model, is_empty, model_view,
                       probs_frame, read_image, run_examples, run_model, tab_header, user_error)

TASK = "mnist"
FIELD = 28          # MNIST image side
BOX = 20            # the digit is scaled to fit this box
CENTRE = 14.0       # where the centre of mass goes (row and column index)
INK_THRESHOLD = 0.2 # fraction of the brightest ink that counts as digit when cropping
MIN_CONTRAST = 24   # 0-255: less than this between ink and background means "nothing drawn"


def to_mnist_digit(img: Image.Image) -> Image.Image | None:
    """A decoded image (RGB or L; alpha already flattened onto white) -> 28x28 L, white on black.

    Dark-on-light input (a drawing, a scan) is inverted; the background level is subtracted;
    the digit is cropped to its bounding box, scaled to fit 20x20 keeping its aspect ratio,
    and placed so that its centre of mass is at the centre of the 28x28 field.
    Returns None when the image holds no visible mark.
    """
    g = np.asarray(img.convert("L"), dtype=np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) > 127:             # dark on light: invert to white on black
        g = 255.0 - g
        border = 255.0 - border
    g = np.clip(g - np.median(border), 0, None)
    peak = g.max()
    if peak < MIN_CONTRAST:
        return None
    g = g * (255.0 / peak)
    rows = np.flatnonzero((g >= INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((g >= INK_THRESHOLD * 255).any(axis=0))
    crop = g[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize((new_w, new_h), Image.LANCZOS)
    digit = np.clip(np.asarray(small, dtype=np.float64), 0, 255)
    total = digit.sum()
    if total <= 0:
        return None
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / total, (xs * digit).sum() / total
    # MNIST's centre of mass sits at row 14, column 14 (pixel indices; on the test set
    # 13.99 +- 0.29 and 14.00 +- 0.29): put the drawing's there.
    top = int(np.clip(round(CENTRE - cy), 0, FIELD - new_h))
    left = int(np.clip(round(CENTRE - cx), 0, FIELD - new_w))
    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    field[top:top + new_h, left:left + new_w] = digit
    return Image.fromarray(np.round(field).astype(np.uint8), mode="L")


def sketch_image(sketch, editor: gr.Sketchpad | None = None):
    """The image to classify from a Sketchpad value: its composite (background + strokes).

    An API caller sends the composite as a file; the browser's editor uploads its images
    beforehand (the component's `accept_blobs` server function) and the event carries only
    their id, so with preprocess=False the composite's bytes are taken from `editor`.
    Either way the bytes are decoded by models.predict.decode_image, like every upload.
    """
    if not isinstance(sketch, dict) or not ("composite" in sketch or "layers" in sketch or "id" in sketch):
        return sketch
    if not sketch.get("composite") and sketch.get("id") and editor is not None:
        blobs = getattr(editor, "blob_storage", {}).pop(sketch["id"], None)
        return getattr(blobs, "composite", None)
    return sketch.get("composite")


NO_DIGIT = ("no digit found: the image is blank or a single colour (fully transparent, uniform, "
            "one pixel); draw or upload a digit, dark on light or light on dark")


def classify_digit(catalog: Catalog, sketch, model_run: str | None = None, editor: gr.Sketchpad | None = None):
    """A drawing (Sketchpad value) or any image -> (model input view, top-k, bar frame).

    The model input view is the 28x28 MNIST-like digit after the model's own preprocessing
    (resized to 32x32), upscaled. An empty canvas in the browser (nothing drawn yet, or just
    cleared) gives empty outputs; anywhere else a blank image is a gr.Error saying so.
    """
    model_run = inputs.run_key(model_run)
    return _classify(catalog, sketch_image(sketch, editor), model_run, blank_is_empty=inputs.from_browser())


def classify_digit_image(catalog: Catalog, image, model_run: str | None = None):
    """An uploaded digit image -> the same outputs as classify_digit; a blank one is a gr.Error."""
    model_run = inputs.run_key(model_run)
    return _classify(catalog, image, model_run)


def _classify(catalog: Catalog, image, model_run, blank_is_empty: bool = False):
    empty = (None, None, probs_frame(None))
    if is_empty(image):
        return empty
    img = read_image(image)
    entry = get_model(catalog, model_run, TASK, BASELINE)
    digit = to_mnist_digit(img)
    if digit is None:
        if blank_is_empty:
            return empty
        raise user_error(f"Could not classify the image: {NO_DIGIT}")
    probs, x = run_model(entry, digit)
    return model_view(x, entry.loaded.config), probs, probs_frame(probs)


def build(catalog: Catalog) -> None:
    default = catalog.default_key(TASK, BASELINE)
    entry = catalog.entry(default) if default else None
    tab_header(catalog, TASK, (BASELINE,),
               "Pick the brush (left of the canvas) and draw a digit with the mouse or a finger, or "
               "upload a picture of one. It is turned into MNIST-style input (white on black, centred "
               "by mass in 28x28) and classified by the VGG19-BN trained on MNIST.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Tabs():
                with gr.Tab("Draw"):
                    sketch = gr.Sketchpad(label="Draw a digit", type="filepath", canvas_size=(400, 400),
                                          fixed_canvas=True, layers=False, transforms=(),
                                          brush=gr.Brush(default_size=14, colors=["#000000"],
                                                         color_mode="fixed"),
                                          elem_id="mnist-sketch", height=420)
                    draw_button = gr.Button("Classify drawing", variant="primary")
                with gr.Tab("Upload"):
                    upload = gr.Image(label="Digit image", sources=["upload", "clipboard"], type="filepath",
                                      image_mode=None, height=280, elem_id="mnist-upload")
                    upload_button = gr.Button("Classify image", variant="primary")
                    examples = run_examples(entry) or asset_examples("mnist_*.png")
                    if examples:
                        gr.Examples([[path] for path, _ in examples], api_name="digit_example", inputs=[upload],
                                    example_labels=[caption for _, caption in examples], label="Digits")
            run = gr.Dropdown(catalog.choices(TASK), value=default, label="Model run")
        with gr.Column(scale=6):
            with gr.Row():
                seen = gr.Image(label="Model input (white on black, 32x32)", format="png",
                                interactive=False, height=220, buttons=[], elem_id="mnist-seen")
                label = gr.Label(num_top_classes=3, label="Prediction", elem_id="mnist-label")
            bars = gr.BarPlot(probs_frame(None, entry.loaded.config.labels if entry else None),
                              x="class", y="probability", y_lim=[0, 1], label="All ten digits",
                              sort=list(entry.loaded.config.labels) if entry else None, height=220)
    outputs = [seen, label, bars]
    gr.on([sketch.change, draw_button.click],
          inputs.endpoint(classify_digit, catalog, editor=sketch, images=("sketch",)), inputs=[sketch, run],
          outputs=outputs, api_name="classify_digit", preprocess=False, trigger_mode="always_last",
          **INFERENCE_CONCURRENCY)
    gr.on([upload.change, upload_button.click], inputs.endpoint(classify_digit_image, catalog), inputs=[upload, run],
          outputs=outputs, api_name="classify_digit_image", preprocess=False, **INFERENCE_CONCURRENCY)
    explain_tab.add_gradcam(catalog, TASK, upload, run, prepare=to_mnist_digit, api_name="gradcam_mnist",
                            title="Why? Grad-CAM of the uploaded digit: where the model looked")
