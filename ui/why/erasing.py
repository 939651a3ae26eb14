"""See why -> Random Erasing study: comparison.json (both variants over several seeds) with its
uncertainty: accuracy per seed, mean ± std, the paired difference and its bootstrap CI."""
from __future__ import annotations

import gradio as gr

from ui import inputs
from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY


def comparison_choices(catalog: Catalog):
    return [(p.parent.name, str(p.parent.name)) for p in h.find_comparisons(catalog.runs_dir)]


def comparison(catalog: Catalog, comparison_name=None):
    comparison_name = inputs.text(comparison_name, "comparison_name")
    paths = {p.parent.name: p for p in h.find_comparisons(catalog.runs_dir)}
    if not paths:                 # nothing to choose from: the view says how to make one
        return h.comparison_view(None)
    return h.comparison_view(paths[inputs.choice(comparison_name, "comparison_name", list(paths))])


def build(catalog: Catalog) -> None:
    names = comparison_choices(catalog)
    first = names[0][1] if names else None
    pick = live.dropdown(catalog, lambda: comparison_choices(catalog),
                         lambda: next(iter(key for _, key in comparison_choices(catalog)), None), label="Comparison")
    text0, fig0 = comparison(catalog, first)
    text = gr.Markdown(text0, label="Comparison summary")
    plot = gr.Plot(fig0, label="Accuracy per seed and paired difference")
    pick.change(inputs.endpoint(comparison, catalog, images=()), inputs=[pick], outputs=[text, plot],
                api_name="erasing_study", preprocess=False, **LIGHT_CONCURRENCY)
