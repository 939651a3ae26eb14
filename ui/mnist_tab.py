"""MNIST tab: draw a digit (or upload one); it is turned into MNIST-like input and classified.

The drawing or upload goes through `models.digits.to_mnist_digit` (white on black, centred
by mass in 28x28), then the model's own preprocessing (from its config.json) resizes it to
its 32x32 input.
"""
from __future__ import annotations

from functools import partial

import gradio as gr

from models.digits import to_mnist_digit
from models.runs import BASELINE
from ui import live
from ui.catalog import Catalog
from ui.common import (INFERENCE_CONCURRENCY, asset_examples, get_model, is_empty, model_view,
                       probs_frame, read_image, run_examples, run_model, sketch_image, tab_header)
from ui.serving import images_as_files
from ui.why import gradcam

TASK = "mnist"


def classify_digit(catalog: Catalog, sketch, model_run: str | None = None, editor: gr.Sketchpad | None = None):
    """A drawing (Sketchpad value) or any image -> (model input view, top-k, bar frame).

    The model input view is the 28x28 MNIST-like digit after the model's own preprocessing
    (resized to 32x32), upscaled.
    """
    return _classify(catalog, sketch_image(sketch, editor), model_run)


def classify_digit_image(catalog: Catalog, image, model_run: str | None = None):
    """An uploaded digit image -> the same outputs as classify_digit."""
    return _classify(catalog, image, model_run)


def _classify(catalog: Catalog, image, model_run):
    empty = (None, None, probs_frame(None))
    if is_empty(image):
        return empty
    img = read_image(image)
    entry = get_model(catalog, model_run, TASK, BASELINE)
    digit = to_mnist_digit(img)
    if digit is None:
        return empty
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
            run = live.dropdown(catalog, lambda: catalog.choices(TASK), lambda: catalog.default_key(TASK, BASELINE),
                                label="Model run")
        with gr.Column(scale=6):
            with gr.Row():
                seen = gr.Image(label="Model input (white on black, 32x32)", format="png",
                                interactive=False, height=220, buttons=[], elem_id="mnist-seen")
                label = gr.Label(num_top_classes=3, label="Prediction", elem_id="mnist-label")
            bars = gr.BarPlot(probs_frame(None, entry.loaded.config.labels if entry else None),
                              x="class", y="probability", y_lim=[0, 1], label="All ten digits",
                              sort=list(entry.loaded.config.labels) if entry else None, height=220)
    outputs = [seen, label, bars]
    gr.on([sketch.change, draw_button.click], images_as_files(partial(classify_digit, catalog, editor=sketch)),
          inputs=[sketch, run], outputs=outputs, api_name="classify_digit", preprocess=False,
          trigger_mode="always_last", **INFERENCE_CONCURRENCY)
    gr.on([upload.change, upload_button.click], images_as_files(partial(classify_digit_image, catalog)),
          inputs=[upload, run], outputs=outputs, api_name="classify_digit_image", preprocess=False,
          **INFERENCE_CONCURRENCY)
    gradcam.add_gradcam(catalog, TASK, upload, run, prepare=to_mnist_digit, api_name="gradcam_mnist",
                            title="Why? Grad-CAM of the uploaded digit: where the model looked")
