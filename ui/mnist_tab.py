"""MNIST tab: draw a digit (or upload one); it is turned into MNIST-like input and classified.

The drawing or upload goes through `models.digits.to_mnist_digit` (white on black, centred
by mass in 28x28), then the model's own preprocessing (from its config.json) resizes it to
its 32x32 input.
"""
from __future__ import annotations


import gradio as gr
from PIL import Image

from models.digits import NotADigit
from models.tasks import TASKS
from models.tasks import BASELINE
from ui import inputs, live
from ui.catalog import Catalog
from ui.common import (INFERENCE_CONCURRENCY, asset_examples, get_model, is_empty, model_input_view, model_view,
                       probability_bars, probs_frame, read_image, run_examples, run_model, sketch_image,
                       tab_header, user_error)
from ui.serving import image_file, images_as_files
from ui.why import gradcam

TASK = "mnist"
LABELS = TASKS[TASK].model_config().labels


NO_DIGIT = ("no digit found: the image is blank or a single colour (fully transparent, uniform, "
            "one pixel); draw or upload a digit, dark on light or light on dark")


def classify_digit(catalog: Catalog, sketch, model_run: str | None = None, editor: gr.Sketchpad | None = None):
    """A drawing (Sketchpad value) or any image -> (model input view, top-k, bar frame).

    The model input view is the 28x28 MNIST-like digit after the model's own preprocessing
    (resized to 32x32), upscaled. An empty canvas in the browser (nothing drawn yet, or just
    cleared) gives empty outputs; anywhere else a blank image is a gr.Error saying so.
    """
    model_run = inputs.run_key(model_run)
    return _classify(catalog, _decoded(sketch_image(sketch, editor)), model_run, blank_is_empty=inputs.from_browser())


def classify_digit_image(catalog: Catalog, image, model_run: str | None = None):
    """An uploaded digit image -> the same outputs as classify_digit; a blank one is a gr.Error."""
    model_run = inputs.run_key(model_run)
    return _classify(catalog, _decoded(image), model_run)


def _classify(catalog: Catalog, img, model_run, blank_is_empty: bool = False):
    """A decoded image (or None) -> outputs; the preparation is models.predict.prepare_image's,
    through run_model, as for every endpoint that classifies a digit. A blank image is a
    gr.Error saying why nothing is classified, except the page's empty canvas (`blank_is_empty`)."""
    empty = (None, None, probs_frame(None, LABELS))
    if img is None:
        return empty
    entry = get_model(catalog, model_run, TASK, BASELINE)
    try:
        probs, x = run_model(entry, img)
    except NotADigit as e:                    # marks, but not one digit: say so, never guess
        raise user_error(f"Could not classify the image: {e}") from e
    if probs is None:
        if blank_is_empty:
            return empty
        raise user_error(f"Could not classify the image: {NO_DIGIT}")
    return model_view(x, entry.loaded.config), probs, probs_frame(probs)


def _decoded(image):
    return None if is_empty(image) else read_image(image)


def build(catalog: Catalog) -> None:
    default = catalog.default_key(TASK, BASELINE)
    entry = catalog.entry(default) if default else None
    tab_header(catalog, TASK, (BASELINE,),
               "Pick the brush (left of the canvas) and draw a digit with the mouse or a finger, or "
               "upload a picture of one. It is turned into MNIST-style input (white on black, centred "
               "by mass in 28x28) and classified by the VGG19-BN trained on MNIST. The last one you "
               "gave, drawing or upload, is the one classified and explained.")
    labels = entry.loaded.config.labels if entry else LABELS
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Tabs():
                with gr.Tab("Draw"):
                    sketch = sketch_component = gr.Sketchpad(label="Draw a digit", type="filepath", canvas_size=(400, 400),
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
                                label="Model run", elem_id="mnist-run")
        with gr.Column(scale=6):
            with gr.Row():
                with gr.Column(min_width=160):
                    seen = model_input_view("Model input (white on black, 32x32)", "mnist-seen", height=220)
                label = gr.Label(num_top_classes=3, label="Prediction", elem_id="mnist-label")
            bars = probability_bars(labels, "All ten digits", elem_id="mnist-bars")
    # The image last classified (drawing or upload, decoded): what a model change re-classifies
    # and Grad-CAM explains. A State does not appear in the API; `current` (hidden) is the
    # Grad-CAM endpoint's image parameter, so API callers send the image to explain there.
    last = gr.State()
    current = gr.Image(visible=False, type="filepath", format="png", label="Digit to explain")
    outputs = [seen, label, bars, last]

    def served(outputs, img):
        # The views as files (ui.serving: written once), the decoded image kept in the State.
        return *(image_file(o) if isinstance(o, Image.Image) else o for o in outputs), img

    def on_drawing(sketch, model_run):
        model_run = inputs.run_key(model_run)
        img = _decoded(sketch_image(sketch, sketch_component))
        return served(_classify(catalog, img, model_run, blank_is_empty=inputs.from_browser()), img)

    def on_upload(image, model_run):
        model_run = inputs.run_key(model_run)
        img = _decoded(image)
        return served(_classify(catalog, img, model_run), img)

    gr.on([sketch.change, draw_button.click], inputs.endpoint(on_drawing, images=("sketch",)), inputs=[sketch, run], outputs=outputs,
          api_name="classify_digit", preprocess=False, trigger_mode="always_last", **INFERENCE_CONCURRENCY
          ).then(lambda img: img, inputs=[last], outputs=[current], api_name="digit_shown", api_visibility="private")
    # trigger_mode="once": Gradio 6's Image fires `change` twice when an image replaces another;
    # the duplicate is dropped instead of classifying twice (and showing an error twice).
    gr.on([upload.change, upload_button.click], inputs.endpoint(on_upload), inputs=[upload, run], outputs=outputs,
          api_name="classify_digit_image", preprocess=False, trigger_mode="once", **INFERENCE_CONCURRENCY
          ).then(lambda img: img, inputs=[last], outputs=[current], api_name="digit_uploaded",
                 api_visibility="private")
    # Another model answers for the same image at once (as in the other tabs).
    run.change(images_as_files(lambda img, model_run: _classify(catalog, img, model_run)), inputs=[last, run],
               outputs=[seen, label, bars],
               api_name="reclassify_digit", api_visibility="private", **INFERENCE_CONCURRENCY)
    gradcam.add_gradcam(catalog, TASK, current, run, api_name="gradcam_mnist", clear_on=(sketch, upload, run),
                        last_classified=last,
                        title="Why? Grad-CAM of your digit (the drawing or upload last classified)")
