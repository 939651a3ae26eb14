"""See why tab: Grad-CAM, confusion matrix -> gallery, occlusion playground, decision threshold and
calibration, top losses, and the Random Erasing study with its uncertainty.

Handlers live in ui/explain_handlers.py (plain functions on a loaded model or a run folder);
the functions here adapt them to the catalog (keys in, one-line gr.Error out) and `build`
wires them. `add_gradcam(...)` puts a Grad-CAM panel under an existing classify tab's image.

Validation thumbnails (galleries) are read from `data_dir` (the folder training used;
default $CNN_STUDIO_DATA_DIR or ./data); without it the galleries list the images instead.

No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` annotation
of the select handlers at run time.
"""
import os
from pathlib import Path

import gradio as gr

from models.presets import DEFAULT_MODEL_CONFIGS
from models.runs import BASELINE, RANDOM_ERASING
from ui import explain_handlers as h
from ui import inputs
from ui.catalog import Catalog, ModelUnavailable
from ui.common import INFERENCE_CONCURRENCY, LIGHT_CONCURRENCY, is_empty, read_image, user_error
from ui.val_images import ValidationImages

DATA_ENV = "CNN_STUDIO_DATA_DIR"
CATSDOGS = "catsdogs"
FILLS = ("mean", "black", "noise")     # what an occlusion box is filled with (models.explain.erase)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_ENV) or "data")


class Images:
    """One ValidationImages per task, opened on first use."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._by_task = {}

    def __call__(self, task, labels=("cat", "dog")):
        if task not in self._by_task:
            self._by_task[task] = ValidationImages(task, self.data_dir, labels)
        return self._by_task[task]


# --- catalog adapters (tested directly) ------------------------------------------------------

def _entry(catalog: Catalog, key):
    key = inputs.required_run_key(key)
    try:
        return catalog.entry(key)
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


def _loaded(catalog: Catalog, key, task=None, variant=BASELINE):
    """The loaded model of `key`; with no key, the default model of `task` and `variant`."""
    key = inputs.run_key(key)
    if not key and task is None:
        raise user_error("model_run is missing: choose a model run")
    try:
        if key:
            entry = catalog.entry(key)
            task, variant = entry.task, entry.variant
        return catalog.get(key, task, variant).loaded
    except ModelUnavailable as e:
        raise user_error(str(e)) from e


def _labels(catalog: Catalog, key):
    entry = _entry(catalog, key)
    metrics = h._read_json(entry.root, "metrics.json") or {}
    if entry.loaded is not None:
        return list(entry.loaded.config.labels)
    return [str(l) for l in metrics.get("labels") or []]


def run_choices(catalog: Catalog, task=None):
    """(label, key) of every run whose files can be read, optionally of one task."""
    return [(e.label, e.key) for e in catalog.with_files() if task is None or e.task == task]


def explain(catalog: Catalog, image, model_run, target_class=None, overlay_strength=0.5, *, task=None,
            variant=BASELINE, prepare=None):
    """Image + run key (or none: the default model of task/variant) -> (Grad-CAM overlay, caption).

    `prepare` turns the decoded image into what the tab classifies (e.g. MNIST's to_mnist_digit);
    it may return None for "nothing to explain"."""
    loaded = _loaded(catalog, model_run, task, variant)
    target_class = inputs.choice(target_class, "target_class", h.target_choices(loaded.config.labels),
                                 default=h.PREDICTED)
    overlay_strength = inputs.real_number(overlay_strength, "overlay_strength", 0, 1)
    if is_empty(image):
        return None, ""
    img = read_image(image)
    if prepare is not None:
        img = prepare(img)
        if img is None:
            return None, "Nothing to explain: no digit found in the image."
    return h.gradcam_view(loaded, img, target_class, overlay_strength)


def confusion(catalog: Catalog, model_run):
    entry = _entry(catalog, model_run)
    table, per_class, note = h.confusion_frame(entry.root)
    return table, per_class, note, [], ""


def confusion_cell_images(catalog: Catalog, images: Images, model_run, index):
    entry = _entry(catalog, model_run)
    cell = h.cell_from_select(index)
    if cell is None:
        return [], "Click a count (not a class name) to see its images."
    labels = _labels(catalog, model_run)
    return h.cell_gallery(entry.root, cell[0], cell[1], images(entry.task, labels), labels)


def gradcam_targets(catalog: Catalog, model_run):
    """The "Explain class" choices for a run: the predicted class, then each of its labels."""
    model_run = inputs.run_key(model_run)
    choices = h.target_choices(_labels(catalog, model_run)) if model_run else [h.PREDICTED]
    return gr.Dropdown(choices=choices, value=h.PREDICTED)


def occlusion_models(catalog: Catalog, base_key, re_key):
    models = []
    for name, key, variant in (("baseline", base_key, BASELINE), ("Random Erasing", re_key, RANDOM_ERASING)):
        try:
            models.append((name, catalog.get(key, CATSDOGS, variant).loaded))
        except ModelUnavailable:
            continue
    if not models:
        raise user_error("No cats vs dogs model is available. Train one with: "
                         "python -m training.train --task catsdogs")
    return models


def occlusion_probe(catalog: Catalog, image, baseline_run, erasing_run, box_x, box_y, box_size, fill="mean"):
    baseline_run, erasing_run, fill = _occlusion_choices(baseline_run, erasing_run, fill)
    if is_empty(image):
        return None, None
    models = occlusion_models(catalog, baseline_run, erasing_run)
    side = models[0][1].config.input_size
    box = h.box_from_centre(inputs.real_number(box_x, "box_x", 0, side), inputs.real_number(box_y, "box_y", 0, side),
                            inputs.whole_number(box_size, "box_size", 1, side), side)
    return h.occlusion_probe(models, read_image(image), box, fill)


def occlusion_sweep(catalog: Catalog, image, baseline_run, erasing_run, box_size, fine_sweep=False, fill="mean"):
    baseline_run, erasing_run, fill = _occlusion_choices(baseline_run, erasing_run, fill)
    fine_sweep = inputs.flag(fine_sweep, "fine_sweep")
    if is_empty(image):
        return [], None
    models = occlusion_models(catalog, baseline_run, erasing_run)
    box = inputs.whole_number(box_size, "box_size", 1, models[0][1].config.input_size)
    return h.occlusion_sweep_view(models, read_image(image), box=box, stride=max(1, box // 2) if fine_sweep else box,
                                  fill=fill)


def _occlusion_choices(baseline_run, erasing_run, fill):
    return (inputs.run_key(baseline_run, "baseline_run"), inputs.run_key(erasing_run, "erasing_run"),
            inputs.choice(fill, "fill", FILLS, default=FILLS[0]))


def threshold(catalog: Catalog, model_run, decision_threshold):
    entry = _entry(catalog, model_run)
    table, note = h.threshold_report(entry.root, inputs.real_number(decision_threshold, "decision_threshold", 0, 1))
    return table, note


def calibration(catalog: Catalog, model_run, bins=10):
    entry = _entry(catalog, model_run)
    labels = _labels(catalog, model_run)
    class_index = 1 if entry.task == CATSDOGS else None
    fig, note = h.reliability_figure(entry.root, int(bins), class_index, labels)
    return h.threshold_curve_frame(entry.root), fig, note


def losses(catalog: Catalog, images: Images, model_run, count=16):
    entry = _entry(catalog, model_run)
    labels = _labels(catalog, model_run)
    return h.top_losses_view(entry.root, labels, images(entry.task, labels), int(count))


def comparison_choices(catalog: Catalog):
    root = catalog.runs_dir
    return [(p.parent.name, str(p.parent.name)) for p in h.find_comparisons(root)]


def comparison(catalog: Catalog, comparison_name=None):
    comparison_name = inputs.text(comparison_name, "comparison_name")
    paths = {p.parent.name: p for p in h.find_comparisons(catalog.runs_dir)}
    if not paths:                 # nothing to choose from: the view says how to make one
        return h.comparison_view(None)
    return h.comparison_view(paths[inputs.choice(comparison_name, "comparison_name", list(paths))])


# --- wiring ------------------------------------------------------------------------------------

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
        caption = gr.Markdown(label="Grad-CAM caption")
    gr.on([button.click, target.change], inputs.endpoint(explain, catalog, task=task, variant=variant, prepare=prepare),
          inputs=[image, run, target, alpha], outputs=[heat, caption], api_name=api_name,
          preprocess=False, **INFERENCE_CONCURRENCY)


def build(catalog: Catalog, data_dir=None) -> None:
    images = Images(data_dir if data_dir is not None else default_data_dir())
    all_runs = run_choices(catalog)
    first = all_runs[0][1] if all_runs else None
    catsdogs_runs = run_choices(catalog, CATSDOGS)
    cd_default = catalog.default_key(CATSDOGS, BASELINE) or (catsdogs_runs[0][1] if catsdogs_runs else None)
    gr.Markdown("Why a model answers as it does, and how sure we can be of it. Everything here is read "
                "from the runs' files (`metrics.json`, `predictions.json`, `comparison.json`) or computed "
                "by the model itself.")
    if not all_runs:
        gr.Markdown("⚠️ No trained runs yet; train one, e.g. `python -m training.train --task cifar10`.",
                    elem_classes=["notice"])
    with gr.Tabs():
        with gr.Tab("Grad-CAM", id="why-gradcam"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    g_image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280)
                    g_run = gr.Dropdown(all_runs, value=first, label="Model run")
                    g_target = gr.Dropdown([h.PREDICTED], value=h.PREDICTED, label="Explain class",
                                           allow_custom_value=True)
                    g_button = gr.Button("Explain", variant="primary")
                with gr.Column():
                    g_heat = gr.Image(label="Grad-CAM", format="png", interactive=False, height=280)
                    g_caption = gr.Markdown(label="Grad-CAM caption")
            g_run.change(inputs.endpoint(gradcam_targets, catalog, images=()), inputs=[g_run], outputs=[g_target],
                         api_name="gradcam_targets", preprocess=False, **LIGHT_CONCURRENCY)
            gr.on([g_button.click, g_image.change], inputs.endpoint(explain, catalog),
                  inputs=[g_image, g_run, g_target], outputs=[g_heat, g_caption], api_name="gradcam",
                  preprocess=False, **INFERENCE_CONCURRENCY)

        with gr.Tab("Confusion matrix", id="why-confusion"):
            c_run = gr.Dropdown(all_runs, value=first, label="Model run")
            table0, acc0, note0, _, _ = confusion(catalog, first) if first else (None, None, "", [], "")
            c_note = gr.Markdown(note0, label="Confusion matrix note")
            with gr.Row(equal_height=False):
                c_table = gr.Dataframe(table0, label="Confusion matrix (rows: true, columns: predicted)",
                                       interactive=False, scale=3)
                c_acc = gr.Dataframe(acc0, label="Per-class accuracy", interactive=False, scale=1)
            c_text = gr.Markdown(label="Clicked cell")
            c_gallery = gr.Gallery(label="Images of the clicked cell", columns=8, height=320, preview=False)
            c_run.change(inputs.endpoint(confusion, catalog, images=()), inputs=[c_run],
                         outputs=[c_table, c_acc, c_note, c_gallery, c_text], api_name="confusion",
                         preprocess=False, **LIGHT_CONCURRENCY)

            def on_cell(model_run, evt: gr.SelectData):
                return confusion_cell_images(catalog, images, model_run, evt.index)

            c_table.select(on_cell, inputs=[c_run], outputs=[c_gallery, c_text], api_name="confusion_cell",
                           preprocess=False, **LIGHT_CONCURRENCY)

        with gr.Tab("Occlusion playground", id="why-occlusion"):
            gr.Markdown("Erase part of a photo and watch P(dog) of the baseline and the Random Erasing model. "
                        "Click the image to move the box (coordinates are in the 224x224 crop the models see), "
                        "or sweep it over the whole image.")
            with gr.Row(equal_height=False):
                with gr.Column():
                    o_image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"], height=280)
                    with gr.Row():
                        o_base = gr.Dropdown(catalog.choices(CATSDOGS, (BASELINE,)),
                                             value=catalog.default_key(CATSDOGS, BASELINE), label="Baseline run")
                        o_re = gr.Dropdown(catalog.choices(CATSDOGS, (RANDOM_ERASING,)),
                                           value=catalog.default_key(CATSDOGS, RANDOM_ERASING),
                                           label="Random Erasing run")
                    o_x = gr.Slider(0, 224, value=112, step=1, label="Box centre x")
                    o_y = gr.Slider(0, 224, value=112, step=1, label="Box centre y")
                    o_size = gr.Slider(8, 224, value=56, step=4, label="Box side (pixels)")
                    o_fill = gr.Radio(list(FILLS), value=FILLS[0], label="Fill")
                with gr.Column():
                    o_view = gr.Image(label="What the models see, box erased", format="png", interactive=False,
                                      height=256)
                    o_table = gr.Dataframe(label="P(dog) without and with the box", interactive=False)
                    with gr.Row():
                        o_fine = gr.Checkbox(label="Fine sweep (half-box steps, 4x slower)", value=False)
                        o_sweep = gr.Button("Sweep the box over the image")
                    o_maps = gr.Gallery(label="P(dog) where the box covers each pixel (blue: cat, red: dog)",
                                        columns=2, height=300, preview=False)
                    o_sweep_table = gr.Dataframe(interactive=False, label="Sweep summary")
            gr.on([o_image.change, o_x.release, o_y.release, o_size.release, o_fill.change],
                  inputs.endpoint(occlusion_probe, catalog),
                  inputs=[o_image, o_base, o_re, o_x, o_y, o_size, o_fill], outputs=[o_view, o_table],
                  api_name="occlusion_probe", preprocess=False, **INFERENCE_CONCURRENCY)

            def on_view_click(image, baseline_run, erasing_run, box_size, fill, evt: gr.SelectData):
                # The view shows the 224 crop enlarged to 256 pixels.
                x, y = (float(v) * 224 / 256 for v in evt.index[:2])
                view, table = occlusion_probe(catalog, image, baseline_run, erasing_run, x, y, box_size, fill)
                return round(x), round(y), view, table

            o_view.select(on_view_click, inputs=[o_image, o_base, o_re, o_size, o_fill],
                          outputs=[o_x, o_y, o_view, o_table], api_name="occlusion_click", preprocess=False,
                          **INFERENCE_CONCURRENCY)
            o_sweep.click(inputs.endpoint(occlusion_sweep, catalog),
                          inputs=[o_image, o_base, o_re, o_size, o_fine, o_fill], outputs=[o_maps, o_sweep_table],
                          api_name="occlusion_sweep", preprocess=False, **INFERENCE_CONCURRENCY)

        with gr.Tab("Threshold & calibration", id="why-threshold"):
            t_run = gr.Dropdown(catsdogs_runs, value=cd_default, label="Cats vs dogs run")
            t_slider = gr.Slider(0, 1, value=0.5, step=0.01, label="Decision threshold on P(dog)")
            tt0, tn0 = threshold(catalog, cd_default, 0.5) if cd_default else (None, "")
            curve0, rel0, ece0 = calibration(catalog, cd_default) if cd_default else (None, None, "")
            t_table = gr.Dataframe(tt0, interactive=False, label="At this threshold (validation split)")
            t_note = gr.Markdown(tn0, label="Threshold note")
            with gr.Row():
                t_curve = gr.LinePlot(curve0, x="threshold", y="value", color="metric", y_lim=[0, 1], height=300,
                                      title="Accuracy, precision, recall vs threshold",
                                      label="Metrics vs threshold", show_label=False)
                t_rel = gr.Plot(rel0, label="Reliability diagram")
            t_ece = gr.Markdown(ece0, label="Calibration error")
            gr.on([t_slider.release, t_run.change], inputs.endpoint(threshold, catalog, images=()),
                  inputs=[t_run, t_slider], outputs=[t_table, t_note], api_name="threshold", preprocess=False,
                  **LIGHT_CONCURRENCY)
            t_run.change(inputs.endpoint(calibration, catalog, images=()), inputs=[t_run],
                         outputs=[t_curve, t_rel, t_ece], api_name="calibration", preprocess=False,
                         **LIGHT_CONCURRENCY)

        with gr.Tab("Top losses", id="why-losses"):
            l_run = gr.Dropdown(all_runs, value=first, label="Model run")
            lg0, lt0, ln0 = losses(catalog, images, first) if first else ([], None, "")
            l_note = gr.Markdown(ln0, label="Top losses note")
            l_gallery = gr.Gallery(lg0, label="Most confidently wrong", columns=8, height=320, preview=False)
            l_table = gr.Dataframe(lt0, interactive=False, label="Top losses")
            l_run.change(inputs.endpoint(losses, catalog, images, images=()), inputs=[l_run],
                         outputs=[l_gallery, l_table, l_note], api_name="top_losses", preprocess=False,
                         **LIGHT_CONCURRENCY)

        with gr.Tab("Random Erasing study", id="why-erasing"):
            names = comparison_choices(catalog)
            s_pick = gr.Dropdown(names, value=names[0][1] if names else None, label="Comparison")
            text0, fig0 = comparison(catalog, names[0][1] if names else None)
            s_text = gr.Markdown(text0, label="Comparison summary")
            s_plot = gr.Plot(fig0, label="Accuracy per seed and paired difference")
            s_pick.change(inputs.endpoint(comparison, catalog, images=()), inputs=[s_pick], outputs=[s_text, s_plot],
                          api_name="erasing_study", preprocess=False, **LIGHT_CONCURRENCY)
