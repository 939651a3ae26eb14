"""The Models panel's "Load from the Hub": a Hub model repo joins the running app, with progress.

Loading a repo downloads its release files (huggingface_hub's tqdm bars, which Gradio's
progress follows with track_tqdm) and checks each file against SHA256SUMS before the model is
built; both can take a while for ResNet50's 90 MB of weights, so the page shows each stage.
Offline (HF_HUB_OFFLINE=1) a repo loads from the local Hub cache, or is refused in one line.
"""
from __future__ import annotations

from functools import partial

import gradio as gr

from ui.catalog import Catalog, ModelUnavailable, public_text
from ui.inputs import text, user_error

API_NAME = "load_hub_model"


def load_hub_model(catalog: Catalog, repo_id: str, progress=gr.Progress(track_tqdm=True), *,
                   off: str | None = None) -> str:
    """Load `repo_id` (user/name[@revision]) into the catalog; returns the Models table.
    `off`: why this app does not download Hub repos for its visitors (None: it does)."""
    repo_id = (text(repo_id, "repo_id") or "").strip()
    if not repo_id:
        raise user_error("repo_id is missing: write a Hub model repo as user/name or user/name@revision")
    if off:
        raise user_error(f"Loading Hub repos from the page is off: {off}")
    try:
        catalog.add_hub(repo_id, progress=lambda fraction, what: progress(fraction, desc=what))
    except ModelUnavailable as e:
        raise user_error(f"repo_id: {public_text(str(e), catalog.runs_dir)}") from None
    return catalog.status_markdown()


def build(off: str | None = None) -> tuple[gr.Textbox, gr.Button]:
    """The repo box and its button, in the Models panel (wired by `wire` once every tab exists)."""
    with gr.Row(equal_height=True):
        repo = gr.Textbox(label="Hub model repo", placeholder="user/name or user/name@revision", scale=4,
                          elem_id="hub-repo", max_lines=1, interactive=not off,
                          info=f"Loading Hub repos from the page is off: {off}" if off else None)
        button = gr.Button("Load from the Hub", size="sm", scale=1, elem_id="load-hub", interactive=not off)
    return repo, button


def wire(catalog: Catalog, repo: gr.Textbox, button: gr.Button, status: gr.Markdown, *, off: str | None = None):
    """Button or Enter: load the repo (progress shown over the Models table), then every model list
    offers it. Downloads run one at a time in a group of their own, never in the model calls' turn."""
    return gr.on([button.click, repo.submit], partial(load_hub_model, catalog, off=off), inputs=[repo],
                 outputs=[status], api_name=API_NAME, show_progress="full", concurrency_id="hub",
                 concurrency_limit=1, preprocess=False)   # as every event: the handler checks its input
