"""Model cards tab: each model's README.md (the card written by cards/), rendered."""
from __future__ import annotations

import re

import gradio as gr

from models.jsonfile import run_file
from ui import inputs
from ui.catalog import Catalog, public_text
from ui.common import LIGHT_CONCURRENCY, user_error
from ui.why.adapters import nothing_chosen, run_picker, thumbnail

FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*\n", re.S)
MAX_CARD_CHARS = 200_000


def has_card(entry) -> bool:
    return run_file(entry.root, "README.md") is not None


def model_card(catalog: Catalog, model_run: str | None):
    """A catalog key -> (card markdown without its YAML front matter, curves.png image or None)."""
    if (skipped := nothing_chosen(model_run, 2)) is not None:
        return skipped                       # no card yet: the tab's notice says how to get one
    entries = {e.key: e for e in catalog.with_files() if has_card(e)}
    model_run = inputs.required_run_key(model_run)
    if model_run not in entries:
        raise user_error(f"model_run: no model card for {model_run!r}; choose one of "
                         f"{', '.join(map(repr, entries)) or '(none yet)'}")
    root = entries[model_run].root
    try:
        text = run_file(root, "README.md").read_text(encoding="utf-8", errors="replace")[:MAX_CARD_CHARS]
    except OSError as e:
        raise user_error(f"cannot read the card of {model_run}: {e.strerror or e}") from e
    text = public_text(FRONT_MATTER.sub("", text, count=1), catalog.runs_dir)
    # Relative images (curves.png) cannot be served from the card; the plot is shown beside it.
    text = re.sub(r"!\[[^\]]*\]\((?!https?://)[^)]*\)", "", text)
    return text, thumbnail(run_file(root, "curves.png"), size=None)   # served from Gradio's cache, not the run


def build(catalog: Catalog) -> None:
    gr.Markdown("The model card of each run: data, recipe, results and limits, as published with the weights.")
    chooser = run_picker(catalog, has_card, label="Model", notice="⚠️ No model cards yet: every training run "
                         "writes one (`README.md` in its run folder).")
    text, curves = model_card(catalog, chooser.value) if chooser.value else ("", None)
    # One column: the card's tables get the page's width (beside a picture they broke words).
    card = gr.Markdown(text, label="Model card", elem_id="model-card", container=True, padding=True)
    plot = gr.Image(curves, label="curves.png", interactive=False, buttons=["fullscreen"], elem_id="model-card-curves")
    chooser.change(inputs.endpoint(model_card, catalog, images=()), inputs=[chooser], outputs=[card, plot],
                   api_name="model_card", preprocess=False, **LIGHT_CONCURRENCY)
