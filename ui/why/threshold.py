"""See why -> Threshold & calibration (cats vs dogs): accuracy, precision and recall at a chosen
threshold on P(dog), their curves over every threshold, and the reliability diagram with its ECE."""
from __future__ import annotations

import gradio as gr

from models.runs import BASELINE
from ui import explain_handlers as h
from ui.catalog import Catalog, train_command
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import CATSDOGS, entry_of, labels_of, run_choices


def threshold(catalog: Catalog, key, value):
    entry = entry_of(catalog, key)
    return h.threshold_report(entry.root, float(value))


def calibration(catalog: Catalog, key, bins=10):
    entry = entry_of(catalog, key)
    labels = labels_of(catalog, key)
    class_index = 1 if entry.task == CATSDOGS else None
    fig, note = h.reliability_figure(entry.root, int(bins), class_index, labels)
    return h.threshold_curve_frame(entry.root), fig, note


def build(catalog: Catalog) -> None:
    runs = run_choices(catalog, CATSDOGS)
    default = catalog.default_key(CATSDOGS, BASELINE) or (runs[0][1] if runs else None)
    if default is None:
        gr.Markdown("⚠️ The decision threshold and calibration are studied on the cats vs dogs models, and "
                    f"there is none yet. Train one with `{train_command(CATSDOGS, BASELINE)}`; its "
                    "validation predictions then appear here.", elem_classes=["notice"], elem_id="threshold-empty")
    with gr.Column(visible=default is not None):
        run = gr.Dropdown(runs, value=default, label="Cats vs dogs run")
        slider = gr.Slider(0, 1, value=0.5, step=0.01, label="Decision threshold on P(dog)")
        table0, note0 = threshold(catalog, default, 0.5) if default else (None, "")
        curve0, fig0, ece0 = calibration(catalog, default) if default else (None, None, "")
        table = gr.Dataframe(table0, interactive=False, label="At this threshold (validation split)")
        note = gr.Markdown(note0)
        with gr.Row():
            curve = gr.LinePlot(curve0, x="threshold", y="value", color="metric", y_lim=[0, 1], height=300,
                                title="Accuracy, precision, recall vs threshold")
            reliability = gr.Plot(fig0, label="Reliability diagram")
        ece = gr.Markdown(ece0)
    gr.on([slider.release, run.change], lambda key, v: threshold(catalog, key, v),
          inputs=[run, slider], outputs=[table, note], api_name="threshold", **LIGHT_CONCURRENCY)
    run.change(lambda key: calibration(catalog, key), inputs=[run], outputs=[curve, reliability, ece],
               api_name="calibration", **LIGHT_CONCURRENCY)
