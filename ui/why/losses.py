"""See why -> Top losses: the images a run gets most confidently wrong, from its own see_why/."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from analysis.stats import top_losses
from ui import inputs
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import (entry_of, labels_of, no_predictions, nothing_chosen, read_predictions, run_images,
                             run_picker, thumbnail)

COLUMNS = ["index", "true", "predicted", "confidence", "P(true)", "loss"]


def top_losses_view(root, labels, k: int = 16):
    """The most confidently wrong images: (gallery items, table, note)."""
    preds = read_predictions(root)
    if preds is None:
        return [], pd.DataFrame(columns=COLUMNS), no_predictions(root)
    rows, files = top_losses(preds, k=k), run_images(root)
    items = [(img, f"#{r['index']} · {labels[r['label']]}→{labels[r['predicted']]}") for r in rows
             if r["index"] in files and (img := thumbnail(files[r["index"]])) is not None]
    table = pd.DataFrame([[r["index"], labels[r["label"]], labels[r["predicted"]], round(r["confidence"], 4),
                           round(r["p_true"], 4), round(r["loss"], 3)] for r in rows], columns=COLUMNS)
    note = (f"{int((~preds.correct).sum())} of {len(preds)} images of the {preds.split or 'validation'} split are "
            f"misclassified; the {len(rows)} most confident shown ({len(items)} with the image this run kept).")
    return items, table, note


def losses(catalog: Catalog, model_run, count=16):
    if (skipped := nothing_chosen(model_run, 3)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    return top_losses_view(entry.root, labels_of(entry), int(count))


def build(catalog: Catalog) -> None:
    run = run_picker(catalog, label="Model run", elem_id="losses-run")
    gallery0, table0, note0 = losses(catalog, run.value) if run.value else ([], pd.DataFrame(columns=COLUMNS), "")
    note = gr.Markdown(note0, label="Top losses note", elem_id="losses-note")
    gr.Markdown("**Most confidently wrong** (caption: image number · true→predicted)")
    gallery = gr.Gallery(gallery0, show_label=False, object_fit="contain", preview=False, elem_id="losses-gallery",
                         elem_classes=["whole-gallery"])
    table = gr.Dataframe(table0, interactive=False, show_label=False, elem_id="losses-table")
    run.change(inputs.endpoint(losses, catalog, images=()), inputs=[run], outputs=[gallery, table, note],
               api_name="top_losses", preprocess=False, **LIGHT_CONCURRENCY)
