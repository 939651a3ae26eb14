"""See why -> Grad-CAM: any image, any run, the class to explain; and `add_gradcam`, the same
panel under a classify tab's own image."""
from __future__ import annotations

import gradio as gr

from models.presets import DEFAULT_MODEL_CONFIGS
from models.runs import BASELINE
from ui import explain_handlers as h
from ui.catalog import Catalog
from ui.common import INFERENCE_CONCURRENCY, LIGHT_CONCURRENCY, is_empty, read_image
from ui.serving import images_as_files
from ui.why.adapters import labels_of, loaded_model, run_choices


def explain(catalog: Catalog, image, key, target=None, alpha=0.5, *, task=None, variant=BASELINE, prepare=None):
    """Image + run key (or none: the default model of task/variant) -> (Grad-CAM overlay, caption).

    `prepare` turns the decoded image into what the tab classifies (e.g. MNIST's to_mnist_digit);
    it may return None for "nothing to explain"."""
    if is_empty(image):
        return None, ""
    loaded = loaded_model(catalog, key, task, variant)
    img = read_image(image)
    if prepare is not None:
        img = prepare(img)
        if img is None:
            return None, "Nothing to explain: no digit found in the image."
    return h.gradcam_view(loaded, img, target, float(alpha if alpha is not None else 0.5))


def target_dropdown(catalog: Catalog, key):
    """The "Explain class" choices for a run: its predicted class or any of its labels."""
    return gr.Dropdown(choices=h.target_choices(labels_of(catalog, key)) if key else [h.PREDICTED],
                       value=h.PREDICTED)


def add_gradcam(catalog: Catalog, task: str, image: gr.components.Component, run: gr.components.Component, *,
                api_name: str, variant: str = BASELINE, labels=None, prepare=None,
                title: str = "Why? Grad-CAM: where the model looked") -> None:
    """A Grad-CAM panel for an existing classify tab: call inside its build(), after its image
    input and run dropdown exist (an empty run means the task's default model, as in the tab).
    `prepare(decoded image) -> image | None` is the tab's own preprocessing (MNIST: to_mnist_digit).
    Runs when asked (a button or a class choice), not on every upload."""
    if labels is None:
        key = catalog.default_key(task, variant)
        labels = (catalog.entry(key).loaded.config.labels if key and catalog.entry(key).loaded is not None
                  else DEFAULT_MODEL_CONFIGS[task].labels)
    with gr.Accordion(title, open=False):
        with gr.Row():
            target = gr.Dropdown(h.target_choices(labels), value=h.PREDICTED, label="Explain class")
            alpha = gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="Overlay strength")
            button = gr.Button("Explain", scale=0)
        heat = gr.Image(label="Grad-CAM", format="png", interactive=False, height=256)
        caption = gr.Markdown()
    gr.on([button.click, target.change],
          images_as_files(lambda img, key, t, a: explain(catalog, img, key, t, a, task=task, variant=variant,
                                                         prepare=prepare)),
          inputs=[image, run, target, alpha], outputs=[heat, caption], api_name=api_name,
          preprocess=False, **INFERENCE_CONCURRENCY)


def build(catalog: Catalog) -> None:
    all_runs = run_choices(catalog)
    first = all_runs[0][1] if all_runs else None
    with gr.Row(equal_height=False):
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280)
            run = gr.Dropdown(all_runs, value=first, label="Model run")
            target = gr.Dropdown([h.PREDICTED], value=h.PREDICTED, label="Explain class", allow_custom_value=True)
            button = gr.Button("Explain", variant="primary")
        with gr.Column():
            heat = gr.Image(label="Grad-CAM", format="png", interactive=False, height=280)
            caption = gr.Markdown()
    run.change(lambda key: target_dropdown(catalog, key), inputs=[run], outputs=[target],
               api_name="gradcam_targets", **LIGHT_CONCURRENCY)
    gr.on([button.click, image.change], images_as_files(lambda img, key, t: explain(catalog, img, key, t)),
          inputs=[image, run, target], outputs=[heat, caption], api_name="gradcam",
          preprocess=False, **INFERENCE_CONCURRENCY)
