"""CNN Studio: the Gradio app for every trained model.

    python app.py [--runs DIR] [--host 127.0.0.1] [--port 7860] [--hub REPO_ID ...]

Models come from run directories under --runs (`<task>/<run>/` with config.json and
model.safetensors; the newest per task and variant is the default) and from Hub repos
(--hub, or the CNN_STUDIO_HUB_MODELS environment variable, space- or comma-separated),
through the same loader (models.artifact.load_model). They are loaded once, at start.
A model that cannot be loaded is listed as unavailable with the reason; the app still starts.

Tests import `build_demo`; only `python app.py` launches a server. This file never
imports `training/`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

import gradio as gr
import torch

from ui import (architecture_tab, augment_tab, cards_tab, catsdogs_tab, cifar10_tab, curves_tab,
                explain_tab, mnist_tab)
from ui.catalog import HUB_ENV, Catalog, hub_ids_from_env

TITLE = "CNN Studio"
DESCRIPTION = ("Classic image classifiers, trained from scratch and published with their evidence: "
               "VGG19-BN on CIFAR-10 and on MNIST, and ResNet50 for cats vs dogs with and without "
               "Random Erasing. Every number on these pages is read from the runs' own files.")

# (label, id, module with build(catalog)), in the order the tabs appear.
TABS = [("CIFAR-10", "cifar10", cifar10_tab), ("MNIST", "mnist", mnist_tab),
        ("Cats vs Dogs", "catsdogs", catsdogs_tab), ("Augmentation", "augmentation", augment_tab),
        ("Architecture", "architecture", architecture_tab), ("Training curves", "curves", curves_tab),
        ("See why", "why", explain_tab), ("Model cards", "cards", cards_tab)]

# Serving limits (see docs: issue "a safe app"). One model request at a time per CPU group,
# a bounded queue: beyond it, requests are refused with a clear message instead of piling up.
QUEUE_MAX_SIZE = 16
DEFAULT_CONCURRENCY = 1
MAX_FILE_SIZE = "10mb"
MAX_THREADS = 8

CSS = """
.notice { border-left: 4px solid var(--color-accent); padding-left: 0.75em; }
#app-title h1 { margin-bottom: 0; }
#model-card { max-height: 640px; overflow-y: auto; }
#architecture-table td:first-child { font-family: var(--font-mono); }
"""


def theme() -> gr.themes.Base:
    # System fonts: no font download, so the app looks the same offline.
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky",
                          font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def build_demo(runs: str | os.PathLike | Catalog | None = "runs", hub: Sequence[str] = (), *,
               device: str = "cpu") -> gr.Blocks:
    """The whole app as a gr.Blocks (not launched).

    `runs` is a runs folder (searched for run directories) or an already built Catalog;
    `hub` lists Hub repo ids to load as well.
    """
    catalog = runs if isinstance(runs, Catalog) else Catalog.from_sources(runs, hub, device=device)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}", elem_id="app-title")
        problems = bool(catalog.unavailable()) or not catalog.entries(available_only=True)
        with gr.Accordion("Models", open=problems):
            gr.Markdown(catalog.status_markdown(), elem_id="model-status")
        with gr.Tabs():
            for label, tab_id, tab in TABS:
                with gr.Tab(label, id=tab_id):
                    tab.build(catalog)
    demo.catalog = catalog  # for tests and scripts: the models this app serves
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    return demo


def launch_options() -> dict:
    """Keyword arguments for demo.launch(): look and limits. Never share=True by default."""
    return dict(theme=theme(), css=CSS, max_file_size=MAX_FILE_SIZE, max_threads=MAX_THREADS,
                footer_links=["api"])


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="CNN Studio: demo every trained model in a browser.")
    p.add_argument("--runs", default="runs", help="folder searched for run directories <task>/<run>/ (default: runs)")
    p.add_argument("--hub", nargs="*", default=[], metavar="REPO_ID",
                   help=f"Hub model repos (user/name[@revision]) to load too; also read from ${HUB_ENV}")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 for a Space)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument("--device", default="cpu", help="device for inference (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))
    hub = list(dict.fromkeys([*args.hub, *hub_ids_from_env()]))
    demo = build_demo(Path(args.runs), hub, device=args.device)
    if args.share:
        demo.launch(server_name=args.host, server_port=args.port, share=True, **launch_options())
        return
    # Gradio's own start-up lines end with "set `share=True` in `launch()`", advice for a script
    # calling launch(); this app's switch is --share, so it prints its own lines instead.
    demo.launch(server_name=args.host, server_port=args.port, share=False, quiet=True, prevent_thread_lock=True,
                **launch_options())
    print(startup_message(demo.local_url), flush=True)
    demo.block_thread()


def startup_message(local_url: str) -> str:
    hint = "" if os.environ.get("SPACE_ID") else "\n* To create a public link, run: python app.py --share"
    return f"* Running on local URL:  {local_url}{hint}"


if __name__ == "__main__":
    main()
