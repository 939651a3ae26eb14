"""See why -> Grad-CAM: any image, any run, the class to explain; and `add_gradcam`, the same
panel under a classify tab's own image. Both answer again when the class to explain changes."""
from __future__ import annotations

import gradio as gr

from analysis.explain import explain_image, overlay
from models.artifact import LoadedModel
from models.digits import NotADigit
from models.predict import prepare
from models.registry import ARCHITECTURES
from models.tasks import BASELINE, TASKS
from ui import inputs
from ui.catalog import Catalog
from ui.common import INFERENCE_CONCURRENCY, LIGHT_CONCURRENCY, VIEW_SIZE, get_model, is_empty, read_image
from ui.serving import images_as_files
from ui.why.adapters import entry_of, labels_of, nothing_chosen, run_picker

PREDICTED = "predicted class"
NOTHING_YET = "Nothing to explain yet: give an image first (upload one, or draw a digit), then press Explain."
CLEAR_PANEL_JS = "() => [null, '']"      # empties a Grad-CAM panel (image, caption) in the page


def target_choices(labels) -> list[str]:
    """"Explain class" choices: the predicted class, or any class by name."""
    return [PREDICTED, *labels]


def gradcam_view(loaded: LoadedModel, img, target: str | None = None, alpha: float = 0.5):
    """A prepared image -> (Grad-CAM overlay on what the model sees, one-line markdown caption)."""
    cfg = loaded.config
    chosen = None if target in (None, "", PREDICTED) else target
    res = explain_image(loaded.model, cfg, img, chosen)
    shown = overlay(res.view, res.heatmap, alpha=alpha, size=max(VIEW_SIZE, cfg.input_size))
    caption = (f"Grad-CAM for **{res.label}** ({'predicted' if chosen is None else 'chosen'}; "
               f"P = {res.probs[res.label]:.1%}), at {ARCHITECTURES[cfg.architecture].gradcam_grid}. "
               f"Warm colours: evidence for {res.label}.")
    if res.raw_max <= 0:
        caption += f" No region adds evidence for {res.label}: the map is empty."
    return shown, caption


def explain(catalog: Catalog, image, model_run, target_class=None, overlay_strength=0.5, *, task=None,
            variant=BASELINE):
    """Image + run key (or none: the default model of task/variant) -> (Grad-CAM overlay, caption).

    The image is prepared as every classify endpoint prepares it for that model's task
    (models.predict.prepare: MNIST digits made MNIST-like), so the explained class and
    its probability are the ones the classify tabs show."""
    if task is None and (skipped := nothing_chosen(model_run, 2)) is not None:
        return skipped
    key = inputs.run_key(model_run)
    if task is None:
        task, variant = (entry := entry_of(catalog, key)).task, entry.variant
    entry = get_model(catalog, key, task, variant)
    target_class = inputs.choice(target_class, "target_class", target_choices(entry.loaded.config.labels),
                                 default=PREDICTED)
    overlay_strength = inputs.real_number(overlay_strength, "overlay_strength", 0, 1)
    if is_empty(image):
        return None, NOTHING_YET
    try:
        _, prepared = prepare(read_image(image), entry.loaded.config)
    except NotADigit as e:
        return None, f"Nothing to explain: {e}."
    if prepared is None:
        return None, "Nothing to explain: no digit found in the image."
    return gradcam_view(entry.loaded, prepared, target_class, overlay_strength)


def explain_last_classified(catalog: Catalog, image, model_run, target_class=None, overlay_strength=0.5,
                            last_classified=None, *, task=None, variant=BASELINE):
    """`explain` for a panel whose page remembers the image it last classified (a gr.State, not an
    API parameter): in the page that image is explained, so an Explain pressed as soon as the
    answer shows never explains an older image; an API caller's `image` is explained as sent."""
    if inputs.from_browser() and last_classified is not None:
        image = last_classified
    return explain(catalog, image, model_run, target_class, overlay_strength, task=task, variant=variant)


def target_dropdown(catalog: Catalog, model_run):
    """The "Explain class" choices for a run: its predicted class or any of its labels."""
    model_run = inputs.run_key(model_run)
    labels = labels_of(entry_of(catalog, model_run)) if model_run else []
    return gr.Dropdown(choices=target_choices(labels), value=PREDICTED)


def add_gradcam(catalog: Catalog, task: str | None, image: gr.components.Component, run: gr.components.Component,
                *, api_name: str, variant: str = BASELINE, clear_on=None, last_classified=None,
                title: str = "Why? Grad-CAM: where the model looked", elem_id: str | None = None) -> None:
    """A Grad-CAM panel for an existing classify tab: call inside its build(), after its image
    input and run dropdown exist (an empty run means the task's default model, as in the tab).
    Runs when asked (a button or a class choice), not on every upload; a map already shown is
    cleared as soon as one of `clear_on` (default: the image and the run) changes, so it never
    sits under an image or a model it does not explain. `last_classified`: the tab's gr.State of the
    decoded image it last classified, explained in the page instead of `image` (explain_last_classified).

    `task` None (See why): any run, open; the classes follow the run, and a new image or run is
    explained at once instead of cleared. One panel everywhere, so every Grad-CAM behaves alike."""
    if task is not None:
        entry = catalog.default_entry(task, variant)
        labels = entry.loaded.config.labels if entry else TASKS[task].labels
    else:
        labels = labels_of(catalog.entry(run.value)) if run.value else []
    ids = (lambda part: f"{elem_id}-{part}") if elem_id else (lambda part: None)  # noqa: E731
    with gr.Accordion(title, open=task is None):
        with gr.Row():
            target = gr.Dropdown(target_choices(labels), value=PREDICTED, label="Explain class",
                                 allow_custom_value=task is None, elem_id=ids("target"))
            alpha = gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="Overlay strength")
            button = gr.Button("Explain", scale=0, variant="primary" if task is None else "secondary")
        heat = gr.Image(label="Grad-CAM", format="png", interactive=False, height=256,
                        elem_classes=["gradcam-heat"], elem_id=ids("heat"))
        caption = gr.Markdown(label="Grad-CAM caption", elem_classes=["gradcam-caption"], elem_id=ids("caption"))
    handler, extra = (explain, []) if last_classified is None else (explain_last_classified, [last_classified])
    answer = images_as_files(inputs.endpoint(handler, catalog, task=task, variant=variant))
    # .input: a class the user picks (the reset below, made by the app, answers nothing twice).
    triggers = [button.click, target.input] + ([image.change] if task is None else [])
    gr.on(triggers, answer, inputs=[image, run, target, alpha, *extra], outputs=[heat, caption], api_name=api_name,
          preprocess=False, trigger_mode="always_last", **INFERENCE_CONCURRENCY)
    if task is None:          # another run: its classes, then a new answer
        run.change(inputs.endpoint(target_dropdown, catalog, images=()), inputs=[run], outputs=[target],
                   api_name=f"{api_name}_targets", preprocess=False, **LIGHT_CONCURRENCY
                   ).then(answer, inputs=[image, run], outputs=[heat, caption], api_name=f"{api_name}_rerun",
                          api_visibility="private", preprocess=False, **INFERENCE_CONCURRENCY)
    else:
        gr.on([c.change for c in (clear_on if clear_on is not None else (image, run))], None,
              outputs=[heat, caption], js=CLEAR_PANEL_JS)


def build(catalog: Catalog) -> None:
    run = run_picker(catalog, label="Model run", elem_id="why-gradcam-run")
    image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280,
                     elem_id="why-gradcam-image")
    add_gradcam(catalog, None, image, run, api_name="gradcam", title="Grad-CAM", elem_id="why-gradcam")
