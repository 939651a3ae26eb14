"""See why -> Confusion matrix: a run's metrics.json as a heat map (counts and row-normalised rates);
a click on a cell opens its images.

No `from __future__ import annotations` here: Gradio reads the `gr.SelectData` annotation
of the select handler at run time.
"""
import gradio as gr

from ui import inputs
from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import NO_RUNS, Images, entry_of, first_run, labels_of, nothing_chosen, run_choices


def confusion(catalog: Catalog, model_run):
    if (skipped := nothing_chosen(model_run, 5)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    table, per_class, note = h.confusion_frame(entry.root)
    return h.confusion_heatmap(table), per_class, note, [], ""


def confusion_cell_images(catalog: Catalog, images: Images, key, index):
    entry = entry_of(catalog, key)
    cell = h.cell_from_select(index)
    if cell is None:
        return [], "Click a count (not a class name) to see its images."
    labels = labels_of(catalog, key)
    return h.cell_gallery(entry.root, cell[0], cell[1], images(entry.task, labels, entry.root), labels)


def build(catalog: Catalog, images: Images) -> None:
    all_runs = run_choices(catalog)
    first = all_runs[0][1] if all_runs else None
    live.markdown(catalog, lambda: "" if run_choices(catalog) else NO_RUNS, hide_empty=True, elem_classes=["notice"])
    run = live.dropdown(catalog, lambda: run_choices(catalog), lambda: first_run(catalog), label="Model run",
                        elem_id="confusion-run")
    table0, acc0, note0, _, _ = confusion(catalog, first) if first else (None, None, "", [], "")
    note = gr.Markdown(note0, label="Confusion matrix note")
    # The heat map takes the whole width; a cell wraps "count · rate" onto two lines where ten
    # classes of four-digit counts (MNIST's test split) would not fit on one.
    table = gr.Dataframe(table0, label="Confusion matrix (rows: true class, columns: predicted class)",
                         interactive=False, wrap=True, elem_id="confusion-heatmap")
    accuracy = gr.Dataframe(acc0, label="Per-class accuracy", interactive=False, wrap=True,
                            elem_id="confusion-per-class")
    text = gr.Markdown(label="Clicked cell", elem_id="confusion-cell-text")
    gallery = gr.Gallery(label="Images of the clicked cell", columns=8, height="auto", object_fit="contain",
                         preview=False, elem_id="confusion-gallery")
    run.change(inputs.endpoint(confusion, catalog, images=()), inputs=[run],
               outputs=[table, accuracy, note, gallery, text], api_name="confusion", preprocess=False,
               **LIGHT_CONCURRENCY)

    def on_cell(model_run, evt: gr.SelectData, progress=gr.Progress()):
        progress(0, desc="reading the images of this cell")   # from the run folder or the dataset: can take a while
        return confusion_cell_images(catalog, images, model_run, evt.index)

    table.select(on_cell, inputs=[run], outputs=[gallery, text], api_name="confusion_cell", **LIGHT_CONCURRENCY)
