"""See why -> Threshold & calibration, for any two-class run: accuracy, precision and recall at a chosen
threshold on P(second class), their curves over every threshold, and the reliability diagram with
its ECE. Class names and the split's name come from the run's own files."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from analysis.stats import reliability, threshold_metrics, threshold_sweep
from models.tasks import TASKS
from ui import inputs
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import entry_of, labels_of, no_predictions, nothing_chosen, read_predictions, run_picker

TABLE_COLUMNS = ["at this threshold", "value"]
CURVE_COLUMNS = ["threshold", "value", "metric"]
RELIABILITY_COLUMNS = ["P", "fraction", "curve"]


def _percent(v) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def threshold_report(root, threshold: float, labels) -> tuple[pd.DataFrame, str]:
    """Accuracy, precision and recall when `labels[1]` is predicted for P(labels[1]) > threshold: one row
    per measure, so that the table fits a phone."""
    preds = read_predictions(root)
    if preds is None:
        return pd.DataFrame(columns=TABLE_COLUMNS), no_predictions(root)
    m = threshold_metrics(preds, threshold)
    pos, neg = labels[1], labels[0]
    table = pd.DataFrame([("accuracy", _percent(m["accuracy"])), (f"precision ({pos})", _percent(m["precision"])),
                          (f"recall ({pos})", _percent(m["recall"])), (f"{pos} called {pos}", m["tp"]),
                          (f"{neg} called {pos}", m["fp"]), (f"{pos} called {neg}", m["fn"]),
                          (f"{neg} called {neg}", m["tn"])], columns=TABLE_COLUMNS)
    note = (f"Predict **{pos}** when P({pos}) is above {threshold:.2f}, else {neg}; {len(preds)} images of the "
            f"{preds.split or 'validation'} split. At 0.50 (the model's own rule) accuracy is "
            f"{_percent(threshold_metrics(preds, 0.5)['accuracy'])}.")
    return table, note


def threshold_curve_frame(root) -> pd.DataFrame:
    """Long frame (threshold, value, metric) of accuracy, precision and recall, for a line plot."""
    preds = read_predictions(root)
    return pd.DataFrame([] if preds is None else [(m["threshold"], m[k], k) for m in threshold_sweep(preds)
                         for k in ("accuracy", "precision", "recall") if m[k] is not None], columns=CURVE_COLUMNS)


def reliability_facts(root, labels, n_bins: int = 10) -> tuple[dict, str]:
    """Reliability diagram of P(labels[1]) (per bin, its mean against how often the label is labels[1],
    beside the diagonal of perfect calibration): the gr.ScatterPlot's value and titles, and its ECE."""
    preds = read_predictions(root)
    if preds is None:
        return {"value": pd.DataFrame(columns=RELIABILITY_COLUMNS)}, no_predictions(root)
    rel = reliability(preds, n_bins=n_bins, class_index=1)
    rows = [(k / 20, k / 20, "perfect calibration") for k in range(21)] + [
        (b["confidence"], b["accuracy"], "observed") for b in rel["bins"] if b["count"]]
    facts = {"value": pd.DataFrame(rows, columns=RELIABILITY_COLUMNS), "x_title": f"P({labels[1]})",
             "y_title": f"fraction that are {labels[1]}",
             "title": f"Reliability, {len(preds)} {preds.split or 'validation'} images"}
    return facts, (f"Expected calibration error of P({labels[1]}): **{rel['ece']:.3f}** ({n_bins} equal-width "
                   f"bins); largest bin gap {rel['mce']:.3f}.")


def threshold(catalog: Catalog, model_run, decision_threshold):
    if (skipped := nothing_chosen(model_run, 2)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    return threshold_report(entry.root, inputs.real_number(decision_threshold, "decision_threshold", 0, 1),
                            labels_of(entry))


def calibration(catalog: Catalog, model_run, bins=10):
    if (skipped := nothing_chosen(model_run, 3)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    facts, note = reliability_facts(entry.root, labels_of(entry), int(bins))
    return threshold_curve_frame(entry.root), gr.ScatterPlot(**facts), note


def build(catalog: Catalog) -> None:
    commands = " or ".join(f"`{t.train_command()}`" for t in TASKS.values() if len(t.labels) == 2)
    run = run_picker(catalog, lambda entry: len(labels_of(entry)) == 2, label="Two-class run", elem_id="threshold-run",
                     notice_id="threshold-empty",
                     notice="⚠️ The decision threshold and calibration apply to a model with two classes, and there "
                            f"is none yet. Train one with {commands}; its predictions then appear here.")
    positive = labels_of(catalog.entry(run.value))[1] if run.value else "the second class"
    slider = gr.Slider(0, 1, value=0.5, step=0.01, label=f"Decision threshold on P({positive})")
    table0, note0 = threshold(catalog, run.value, 0.5) if run.value else (pd.DataFrame(columns=TABLE_COLUMNS), "")
    entry = catalog.entry(run.value) if run.value else None
    curve0 = threshold_curve_frame(entry.root if entry else None)
    facts, ece0 = reliability_facts(entry.root, labels_of(entry)) if entry else ({"value": None}, "")
    note = gr.Markdown(note0, label="Threshold note", elem_id="threshold-note")
    with gr.Row():
        table = gr.Dataframe(table0, label="At this threshold", show_label=False, interactive=False, min_width=260,
                             elem_id="threshold-table")
        curve = gr.LinePlot(curve0, x="threshold", y="value", color="metric", y_lim=[0, 1], height=300,
                            title="Measures by threshold", label="Measures by threshold", show_label=False,
                            min_width=300)
    reliability_diagram = gr.ScatterPlot(x="P", y="fraction", color="curve", x_lim=[0, 1], y_lim=[0, 1], height=320,
                                      label="Reliability diagram", show_label=False, elem_id="reliability", **facts)
    ece = gr.Markdown(ece0, label="Calibration error")
    gr.on([slider.release, run.change], inputs.endpoint(threshold, catalog, images=()),
          inputs=[run, slider], outputs=[table, note], api_name="threshold", preprocess=False, **LIGHT_CONCURRENCY)
    run.change(inputs.endpoint(calibration, catalog, images=()), inputs=[run],
               outputs=[curve, reliability_diagram, ece], api_name="calibration", preprocess=False,
               **LIGHT_CONCURRENCY)
