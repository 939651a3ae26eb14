"""Cats vs Dogs tab: one image, the baseline ResNet50 and the Random Erasing one side by side."""
from __future__ import annotations


import gradio as gr

from models.tasks import TASKS
from models.tasks import BASELINE, RANDOM_ERASING
from ui import inputs, live
from ui.catalog import Catalog, ModelUnavailable
from ui.common import (INFERENCE_CONCURRENCY, asset_examples, is_empty, model_input_view, model_view,
                       read_image, run_examples, run_model, tab_header, user_error)
from ui.serving import images_as_files
from ui.why import gradcam
from ui.why.adapters import no_model_message

TASK = "catsdogs"
VARIANTS = (BASELINE, RANDOM_ERASING)


def classify_catdog(catalog: Catalog, image, baseline_run: str | None = None, erasing_run: str | None = None):
    """Image -> (baseline {cat, dog}, Random Erasing {cat, dog}, model view, summary markdown).

    A model that is missing gives an empty output and a line in the summary saying how to
    train it; with neither model there is nothing to show, so it is a gr.Error.
    """
    baseline_run = inputs.run_key(baseline_run, "baseline_run")
    erasing_run = inputs.run_key(erasing_run, "erasing_run")
    if is_empty(image):
        return None, None, None, ""
    results, notes, seen = [], [], None
    img = None
    for variant, key in zip(VARIANTS, (baseline_run, erasing_run)):
        try:
            entry = catalog.get(key, TASK, variant)
        except ModelUnavailable as e:
            results.append(None)
            notes.append(str(e))
            continue
        if img is None:
            img = read_image(image)
        probs, x = run_model(entry, img)
        results.append(probs)
        if seen is None:
            seen = model_view(x, entry.loaded.config)
    if all(r is None for r in results):
        raise user_error(no_model_message())
    summary = " · ".join(
        f"**{name}**: {max(r, key=r.get)} ({max(r.values()):.1%})"
        for name, r in zip(("Baseline", "Random Erasing"), results) if r is not None)
    if notes:
        summary += "\n\n" + "\n\n".join(f"⚠️ {n}" for n in notes)
    return results[0], results[1], seen, summary


def build(catalog: Catalog) -> None:
    defaults = {v: catalog.default_key(TASK, v) for v in VARIANTS}
    tab_header(catalog, TASK, VARIANTS,
               "One photo, two ResNet50s trained the same way from the same initial weights: "
               "one without and one with Random Erasing. Each gives P(cat) and P(dog).")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image = gr.Image(label="Image", sources=["upload", "webcam", "clipboard"], type="filepath",
                             image_mode=None, height=300, elem_id="catsdogs-input")
            button = gr.Button("Classify", variant="primary")
            entry = catalog.entry(defaults[BASELINE]) if defaults[BASELINE] else None
            examples = run_examples(entry) or asset_examples("cat*.png") + asset_examples("sample_*.png")
            if examples:
                gr.Examples([[path] for path, _ in examples], api_name="catdog_example", inputs=[image],
                            example_labels=[caption for _, caption in examples], label="Examples")
            side = (entry.loaded.config if entry else TASKS[TASK].model_config()).input_size
            seen = model_input_view(f"What the models see ({side}x{side} centre crop)", "catsdogs-seen", height=200)
        with gr.Column(scale=6):
            with gr.Row():
                with gr.Column():
                    base_run = live.dropdown(catalog, lambda: catalog.choices(TASK, (BASELINE,)),
                                             lambda: catalog.default_key(TASK, BASELINE), label="Baseline run")
                    base_label = gr.Label(num_top_classes=2, label="Baseline", elem_id="catsdogs-baseline")
                with gr.Column():
                    re_run = live.dropdown(catalog, lambda: catalog.choices(TASK, (RANDOM_ERASING,)),
                                           lambda: catalog.default_key(TASK, RANDOM_ERASING),
                                           label="Random Erasing run")
                    re_label = gr.Label(num_top_classes=2, label="Random Erasing", elem_id="catsdogs-erasing")
            summary = gr.Markdown(label="Summary", elem_id="catsdogs-summary")
    # trigger_mode="once": Gradio 6's Image fires `change` twice when an image replaces another.
    gr.on([image.change, button.click], images_as_files(inputs.endpoint(classify_catdog, catalog)),
          inputs=[image, base_run, re_run], outputs=[base_label, re_label, seen, summary],
          api_name="classify_catdog", preprocess=False, trigger_mode="once", **INFERENCE_CONCURRENCY)
    gr.on([base_run.change, re_run.change], images_as_files(inputs.endpoint(classify_catdog, catalog)),
          inputs=[image, base_run, re_run], outputs=[base_label, re_label, seen, summary],
          api_name="reclassify_catdog", api_visibility="private", preprocess=False, **INFERENCE_CONCURRENCY)
    gradcam.add_gradcam(catalog, TASK, image, base_run, api_name="gradcam_catsdogs")
    gradcam.add_gradcam(catalog, TASK, image, re_run, variant=RANDOM_ERASING, api_name="gradcam_catsdogs_re",
                            title="Why? Grad-CAM of the Random Erasing model")
