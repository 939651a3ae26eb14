"""See why -> Threshold & calibration (cats vs dogs): accuracy, precision and recall at a chosen
threshold on P(dog), their curves over every threshold, and the reliability diagram with its ECE."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from models.tasks import BASELINE
from ui import inputs
from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog, train_command
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import CATSDOGS, entry_of, first_run, labels_of, nothing_chosen, run_choices

# The columns of the table at one threshold (explain_handlers.threshold_report), shown empty
# before there is a run, instead of Gradio's placeholder headers "1 2 3".
TABLE_COLUMNS = ["threshold", "accuracy", "precision", "recall", "true pos", "false pos", "false neg", "true neg"]


def threshold(catalog: Catalog, model_run, decision_threshold):
    if (skipped := nothing_chosen(model_run, 2)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    return h.threshold_report(entry.root, inputs.real_number(decision_threshold, "decision_threshold", 0, 1))


def calibration(catalog: Catalog, model_run, bins=10):
    if (skipped := nothing_chosen(model_run, 3)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    labels = labels_of(catalog, model_run)
    class_index = 1 if entry.task == CATSDOGS else None
    fig, note = h.reliability_figure(entry.root, int(bins), class_index, labels)
    return h.threshold_curve_frame(entry.root), fig, note


def build(catalog: Catalog) -> None:
    runs = run_choices(catalog, CATSDOGS)
    default = catalog.default_key(CATSDOGS, BASELINE) or (runs[0][1] if runs else None)
    live.markdown(catalog, lambda: "" if run_choices(catalog, CATSDOGS) else (
        "⚠️ The decision threshold and calibration are studied on the cats vs dogs models, and there is "
        f"none yet. Train one with `{train_command(CATSDOGS, BASELINE)}`; its validation predictions then "
        "appear here."), hide_empty=True, elem_classes=["notice"], elem_id="threshold-empty")
    run = live.dropdown(catalog, lambda: run_choices(catalog, CATSDOGS), lambda: first_run(catalog, CATSDOGS),
                        label="Cats vs dogs run")
    slider = gr.Slider(0, 1, value=0.5, step=0.01, label="Decision threshold on P(dog)")
    table0, note0 = threshold(catalog, default, 0.5) if default else (pd.DataFrame(columns=TABLE_COLUMNS), "")
    curve0, fig0, ece0 = calibration(catalog, default) if default else (None, None, "")
    table = gr.Dataframe(table0, interactive=False, label="At this threshold (validation split)",
                         elem_id="threshold-table")
    note = gr.Markdown(note0, label="Threshold note")
    with gr.Row():
        curve = gr.LinePlot(curve0, x="threshold", y="value", color="metric", y_lim=[0, 1], height=300,
                            title="Accuracy, precision, recall vs threshold", label="Metrics vs threshold",
                            show_label=False)
        reliability = gr.Plot(fig0, label="Reliability diagram")
    ece = gr.Markdown(ece0, label="Calibration error")
    gr.on([slider.release, run.change], inputs.endpoint(threshold, catalog, images=()),
          inputs=[run, slider], outputs=[table, note], api_name="threshold", preprocess=False, **LIGHT_CONCURRENCY)
    run.change(inputs.endpoint(calibration, catalog, images=()), inputs=[run], outputs=[curve, reliability, ece],
               api_name="calibration", preprocess=False, **LIGHT_CONCURRENCY)
