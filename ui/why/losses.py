"""See why -> Top losses: the validation images a run gets most confidently wrong."""
from __future__ import annotations

import gradio as gr

from ui import inputs
from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import NO_RUNS, Images, entry_of, first_run, labels_of, nothing_chosen, run_choices


def losses(catalog: Catalog, images: Images, model_run, count=16):
    if (skipped := nothing_chosen(model_run, 3)) is not None:
        return skipped
    entry = entry_of(catalog, model_run)
    labels = labels_of(catalog, model_run)
    return h.top_losses_view(entry.root, labels, images(entry.task, labels, entry.root), int(count))


def build(catalog: Catalog, images: Images) -> None:
    all_runs = run_choices(catalog)
    first = all_runs[0][1] if all_runs else None
    live.markdown(catalog, lambda: "" if run_choices(catalog) else NO_RUNS, hide_empty=True, elem_classes=["notice"])
    run = live.dropdown(catalog, lambda: run_choices(catalog), lambda: first_run(catalog), label="Model run")
    gallery0, table0, note0 = losses(catalog, images, first) if first else ([], None, "")
    note = gr.Markdown(note0, label="Top losses note")
    gallery = gr.Gallery(gallery0, label="Most confidently wrong (caption: image number · true→predicted)", columns=8,
                         height="auto", object_fit="contain", preview=False, elem_id="losses-gallery")
    table = gr.Dataframe(table0, interactive=False, label="Top losses")
    run.change(inputs.endpoint(losses, catalog, images, images=()), inputs=[run], outputs=[gallery, table, note],
               api_name="top_losses", preprocess=False, **LIGHT_CONCURRENCY)
