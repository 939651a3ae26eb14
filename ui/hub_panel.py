"""The Models panel's "Load from the Hub": a Hub model repo joins the running app, with progress.

Loading a repo downloads its release files (huggingface_hub's tqdm bars, which Gradio's
progress follows with track_tqdm) and checks each file against SHA256SUMS before the model is
built; both can take a while for ResNet50's 90 MB of weights, so the page shows each stage.
Offline (HF_HUB_OFFLINE=1) a repo loads from the local Hub cache, or is refused in one line.
"""
from __future__ import annotations

from functools import partial

import gradio as gr

from ui import inputs
from ui.catalog import Catalog, ModelUnavailable, public_text

API_NAME = "load_hub_model"
NOT_CACHED = "not in the local Hub cache"     # models.artifact's words, before huggingface_hub's own


def load_hub_model(catalog: Catalog, repo_id: str, progress=gr.Progress(track_tqdm=True), *,
                   off: str | None = None) -> str:
    """Load `repo_id` (user/name[@revision]) into the catalog; returns the Models table.
    `off`: why this app does not download Hub repos for its visitors (None: it does).
    In the page a refusal is a warning beside the unchanged table (an error would mark it red)."""
    try:
        repo_id = (repo_id or "").strip()
        if not repo_id:
            raise ModelUnavailable("write a Hub model repo as user/name or user/name@revision")
        if off:
            raise ModelUnavailable(f"Loading Hub repos from the page is off: {off}")
        catalog.add_hub(repo_id, progress=lambda fraction, what: progress(fraction, desc=what))
    except ModelUnavailable as e:
        message = f"repo_id: {public_text(str(e), catalog.runs_dir)}"
        if not inputs.from_browser():
            raise inputs.user_error(message) from None
        if NOT_CACHED in message:   # the page says it in its own words, without the library's advice
            message = f"{repo_id} is {NOT_CACHED}, and the Hub cannot be reached (offline or no network)"
        gr.Warning(message)
    return catalog.status_markdown()


def build(off: str | None = None) -> gr.Textbox:
    """The repo box and its button, in the Models panel (wired by `wire` once every tab exists)."""
    return gr.Textbox(label="Hub model repo", placeholder="user/name or user/name@revision", elem_id="hub-repo",
                      max_lines=1, interactive=not off, submit_btn="Load from the Hub",
                      info=f"Loading Hub repos from the page is off: {off}" if off else None)


def wire(catalog: Catalog, repo: gr.Textbox, status: gr.Markdown, *, off: str | None = None):
    """Its button or Enter: load the repo (progress shown over the Models table), then every model list
    offers it. Downloads run one at a time in a group of their own, never in the model calls' turn."""
    return repo.submit(inputs.endpoint(load_hub_model, catalog, images=(), off=off), inputs=[repo], outputs=[status],
                       api_name=API_NAME, show_progress="full", concurrency_id="hub", concurrency_limit=1)
