"""See why -> Random Erasing study: comparison.json (both variants over several seeds) with its
uncertainty: accuracy per seed, mean ± std, the paired difference and its bootstrap CI."""
from __future__ import annotations

import gradio as gr

from ui import explain_handlers as h
from ui import live
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY


def comparison_choices(catalog: Catalog):
    return [(p.parent.name, str(p.parent.name)) for p in h.find_comparisons(catalog.runs_dir)]


def comparison(catalog: Catalog, name):
    paths = {p.parent.name: p for p in h.find_comparisons(catalog.runs_dir)}
    return h.comparison_view(paths.get(name))


def build(catalog: Catalog) -> None:
    names = comparison_choices(catalog)
    first = names[0][1] if names else None
    pick = live.dropdown(catalog, lambda: comparison_choices(catalog),
                         lambda: next(iter(key for _, key in comparison_choices(catalog)), None), label="Comparison")
    text0, fig0 = comparison(catalog, first)
    text = gr.Markdown(text0)
    plot = gr.Plot(fig0, label="Accuracy per seed and paired difference")
    pick.change(lambda name: comparison(catalog, name), inputs=[pick], outputs=[text, plot],
                api_name="erasing_study", **LIGHT_CONCURRENCY)
