"""CIFAR-10 tab: any image in; top classes, all ten probabilities, and the 32x32 input the model sees."""
from __future__ import annotations


import gradio as gr

from models.tasks import TASKS
from models.tasks import BASELINE
from ui import inputs, live
from ui.catalog import Catalog
from ui.common import (INFERENCE_CONCURRENCY, asset_examples, get_model, is_empty, model_input_view, model_view,
                       probability_bars, probs_frame, read_image, run_examples, run_model, tab_header)
from ui.serving import images_as_files
from ui.why import gradcam

TASK = "cifar10"
LABELS = TASKS[TASK].model_config().labels


def classify_cifar10(catalog: Catalog, image, model_run: str | None = None):
    """Image (payload, path, bytes, PIL or array) -> (top-k label dict, bar-chart frame, model view).

    No image gives empty outputs (a cleared input); an unreadable one a one-line gr.Error.
    """
    model_run = inputs.run_key(model_run)
    if is_empty(image):
        return None, probs_frame(None, LABELS), None
    entry = get_model(catalog, model_run, TASK, BASELINE)
    probs, x = run_model(entry, read_image(image))
    return probs, probs_frame(probs), model_view(x, entry.loaded.config)


def build(catalog: Catalog) -> None:
    """The tab's components and events, inside an open gr.Tab."""
    default = catalog.default_key(TASK, BASELINE)
    tab_header(catalog, TASK, (BASELINE,),
               "Upload, drag and drop, paste or take a photo; the VGG19-BN trained on CIFAR-10 "
               "says which of its ten classes it looks like.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image = gr.Image(label="Image", sources=["upload", "webcam", "clipboard"], type="filepath",
                             image_mode=None, height=300, elem_id="cifar10-input")
            with gr.Row():
                run = live.dropdown(catalog, lambda: catalog.choices(TASK), lambda: catalog.default_key(TASK, BASELINE),
                                    label="Model run", scale=3)
                button = gr.Button("Classify", variant="primary", scale=1, min_width=100)
            entry = catalog.entry(default) if default else None
            labels = entry.loaded.config.labels if entry else LABELS
            examples = run_examples(entry) or asset_examples("sample_*.png")
            if examples:
                gr.Examples([[path] for path, _ in examples], api_name="cifar10_example", inputs=[image],
                            example_labels=[caption for _, caption in examples],
                            label="Validation images of this run" if run_examples(entry) else "Samples",
                            examples_per_page=10)
        with gr.Column(scale=6):
            label = gr.Label(num_top_classes=3, label="Top classes", elem_id="cifar10-label")
            bars = probability_bars(labels, "All ten classes", elem_id="cifar10-bars")
            seen = model_input_view("What the model sees (32x32 after preprocessing, upscaled)", "cifar10-seen",
                                    height=200)
    # trigger_mode="once": Gradio 6's Image fires `change` twice when an image replaces another;
    # the second, identical request is dropped instead of classifying (or failing) twice.
    classify = images_as_files(inputs.endpoint(classify_cifar10, catalog))
    gr.on([image.change, button.click], classify, inputs=[image, run], outputs=[label, bars, seen],
          api_name="classify_cifar10", preprocess=False, trigger_mode="once", **INFERENCE_CONCURRENCY)
    run.change(classify, inputs=[image, run], outputs=[label, bars, seen], api_name="reclassify_cifar10",
               api_visibility="private", preprocess=False, **INFERENCE_CONCURRENCY)
    gradcam.add_gradcam(catalog, TASK, image, run, api_name="gradcam_cifar10")
