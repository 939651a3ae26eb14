"""See why -> Errors: a run's metrics.json as a heat map (counts and row-normalised rates), a click on a
cell opens its images; below, the images the run gets most confidently wrong. Every image comes from
the run's own see_why/ (training/gallery.py), so a run folder, a Space and a Hub repo show the same.

No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` annotation
of the select handler at run time.
"""
import gradio as gr
import numpy as np
import pandas as pd

from analysis.stats import confusion_cell, top_losses
from models.jsonfile import try_read_json
from ui import inputs
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import (entry_of, labels_of, no_predictions, nothing_chosen, read_predictions, run_gallery,
                             run_picker)

TRUE_COLUMN = "true \\ predicted"
PER_CLASS_COLUMNS = ["class", "accuracy", "images"]
LOSS_COLUMNS = ["index", "true", "predicted", "confidence", "P(true)", "loss"]
GALLERY_LIMIT = 60         # images shown per cell (the text says how many the cell has)


def confusion_frame(root):
    """metrics.json -> (confusion table: first column the true class, then one column per predicted
    class, counts; per-class accuracy table, in percent; note). Empty tables and a note when there
    is no metrics.json."""
    metrics = try_read_json(root, "metrics.json")
    if not isinstance(metrics, dict) or "confusion_matrix" not in metrics:
        return pd.DataFrame(columns=[TRUE_COLUMN]), pd.DataFrame(columns=PER_CLASS_COLUMNS), (
            f"This run has no metrics.json (its final evaluation); write it with "
            f"`python -m training.evaluate {root or 'RUN_DIR'}`.")
    labels = [str(l) for l in metrics.get("labels") or range(len(metrics["confusion_matrix"]))]
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    table = pd.DataFrame(cm, columns=labels)
    table.insert(0, TRUE_COLUMN, labels)
    per_class = metrics.get("per_class_accuracy") or {}
    acc = pd.DataFrame({"class": labels, "images": cm.sum(axis=1).tolist(),
                        "accuracy": [f"{v:.2%}" if isinstance(v := per_class.get(l), (int, float)) else "n/a"
                                     for l in labels]})[PER_CLASS_COLUMNS]
    note = (f"{metrics.get('split', 'validation')} split, {int(cm.sum())} images, accuracy "
            f"{metrics.get('accuracy', float('nan')):.2%}. Each cell: the count · its share of that row's "
            "(true class's) images; the colour is that share. Click a cell to see its images.")
    return table, acc, note


def confusion_heatmap(table: pd.DataFrame, colormap: str = "Blues"):
    """The confusion table as a heat map (a pandas Styler, which gr.Dataframe renders): each cell
    shows its count and its row-normalised rate (share of the true class's images), coloured by
    that rate on a fixed 0-1 scale, so 2 and 10 classes read the same way. The data stays counts."""
    if table.empty:
        return table
    counts = table.drop(columns=[TRUE_COLUMN])
    rates = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    # Rates 0..1 take the middle 90% of the colour map; pandas writes dark text on light cells, light on dark.
    styler = table.style.background_gradient(colormap, subset=list(counts.columns), axis=None, gmap=rates,
                                             vmin=-0.05 / 0.9, vmax=1 + 0.05 / 0.9)
    for row in table.index:
        for col in counts.columns:
            text = f"{counts.at[row, col]} · {rates.at[row, col]:.0%}"
            styler = styler.format(lambda _v, _t=text: _t, subset=([row], [col]))
    return styler


def cell_from_select(index):
    """gr.SelectData.index of the confusion table ([row, column]) -> (true, predicted) class ids;
    None for the label column."""
    try:
        row, col = (int(v) for v in index)
    except (TypeError, ValueError):
        return None
    return (row, col - 1) if col >= 1 and row >= 0 else None


def cell_gallery(root, true_class: int, predicted_class: int, labels, limit: int = GALLERY_LIMIT):
    """The images of that cell the run kept (see_why/), most confident first: (gallery items
    (image, caption), markdown saying how many the cell has and which of them are shown)."""
    preds = read_predictions(root)
    if preds is None:
        return [], no_predictions(root)
    if not (0 <= true_class < preds.num_classes and 0 <= predicted_class < preds.num_classes):
        return [], "No such cell."
    rows = confusion_cell(preds, true_class, predicted_class)
    items = run_gallery(root, [(int(preds.indices[r]), f"#{int(preds.indices[r])} · "
                                f"{preds.probabilities[r, predicted_class]:.0%}") for r in rows], limit)
    text = f"true **{labels[true_class]}**, predicted **{labels[predicted_class]}**: {len(rows)} image(s)"
    if len(rows):
        which = "most confidently wrong" if true_class != predicted_class else "least confident correct"
        text += (f"; {len(items)} shown, the {which} ones this run kept in its `see_why/` folder. "
                 f"Captions: image number in the split · P({labels[predicted_class]}).")
    return items, text


def top_losses_view(root, labels, k: int = 16):
    """The most confidently wrong images: (gallery items, table, note)."""
    preds = read_predictions(root)
    if preds is None:
        return [], pd.DataFrame(columns=LOSS_COLUMNS), no_predictions(root)
    rows = top_losses(preds, k=k)
    items = run_gallery(root, [(r["index"], f"#{r['index']} · {labels[r['label']]}→{labels[r['predicted']]}")
                               for r in rows])
    table = pd.DataFrame([[r["index"], labels[r["label"]], labels[r["predicted"]], round(r["confidence"], 4),
                           round(r["p_true"], 4), round(r["loss"], 3)] for r in rows], columns=LOSS_COLUMNS)
    note = (f"{int((~preds.correct).sum())} of {len(preds)} images of the {preds.split or 'validation'} split are "
            f"misclassified; the {len(rows)} most confident shown ({len(items)} with the image this run kept).")
    return items, table, note


def confusion(catalog: Catalog, model_run):
    if (skipped := nothing_chosen(model_run, 5)) is not None:
        return skipped
    table, per_class, note = confusion_frame(entry_of(catalog, model_run).root)
    return confusion_heatmap(table), per_class, note, [], ""


def confusion_cell_images(catalog: Catalog, key, index):
    entry = entry_of(catalog, key)
    cell = cell_from_select(index)
    if cell is None:
        return [], "Click a count (not a class name) to see its images."
    return cell_gallery(entry.root, *cell, labels_of(entry))


def losses(catalog: Catalog, model_run, count=16):
    if (skipped := nothing_chosen(model_run, 3)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    return top_losses_view(entry.root, labels_of(entry), int(count))


def build(catalog: Catalog) -> None:
    run = run_picker(catalog, label="Model run", elem_id="confusion-run")
    table0, acc0, note0, _, _ = confusion(catalog, run.value) if run.value else (
        pd.DataFrame(columns=[TRUE_COLUMN]), pd.DataFrame(columns=PER_CLASS_COLUMNS), "", [], "")
    note = gr.Markdown(note0, label="Confusion matrix note")
    # The heat map takes the whole width; a cell wraps "count · rate" onto two lines where ten
    # classes of four-digit counts (MNIST's test split) would not fit on one.
    table = gr.Dataframe(table0, label="Confusion matrix (rows: true class, columns: predicted class)",
                         interactive=False, wrap=True, elem_id="confusion-heatmap")
    accuracy = gr.Dataframe(acc0, label="Per-class accuracy", interactive=False, wrap=True,
                            elem_id="confusion-per-class")
    text = gr.Markdown(label="Clicked cell", elem_id="confusion-cell-text")
    gallery = gr.Gallery(label="Images of the clicked cell", show_label=False, object_fit="contain", preview=False,
                         elem_id="confusion-gallery", elem_classes=["whole-gallery"])
    gr.Markdown("### Most confidently wrong\nCaption: image number · true→predicted.")
    gallery0, losses0, losses_note0 = losses(catalog, run.value) if run.value else (
        [], pd.DataFrame(columns=LOSS_COLUMNS), "")
    losses_note = gr.Markdown(losses_note0, label="Top losses note", elem_id="losses-note")
    losses_gallery = gr.Gallery(gallery0, label="Most confidently wrong", show_label=False, object_fit="contain",
                                preview=False, elem_id="losses-gallery", elem_classes=["whole-gallery"])
    losses_table = gr.Dataframe(losses0, label="Top losses", show_label=False, interactive=False,
                                elem_id="losses-table")
    run.change(inputs.endpoint(confusion, catalog, images=()), inputs=[run],
               outputs=[table, accuracy, note, gallery, text], api_name="confusion", preprocess=False,
               **LIGHT_CONCURRENCY)
    run.change(inputs.endpoint(losses, catalog, images=()), inputs=[run],
               outputs=[losses_gallery, losses_table, losses_note], api_name="top_losses", preprocess=False,
               **LIGHT_CONCURRENCY)

    def on_cell(model_run, evt: gr.SelectData):
        return confusion_cell_images(catalog, model_run, evt.index)

    table.select(on_cell, inputs=[run], outputs=[gallery, text], api_name="confusion_cell", **LIGHT_CONCURRENCY)
