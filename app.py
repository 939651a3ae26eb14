"""CNN Studio: the Gradio app for every trained model.

    python app.py [--runs DIR] [--host 127.0.0.1] [--port 7860] [--hub REPO_ID ...]

Models come from run directories under --runs (`<task>/<run>/` with config.json and
model.safetensors; the newest per task and variant is the default) and from Hub repos
(--hub, or the CNN_STUDIO_HUB_MODELS environment variable, space- or comma-separated),
through the same loader (models.artifact.load_model). They are loaded once, at start.
A model that cannot be loaded is listed as unavailable with the reason; the app still starts.

Tests import `build_demo`; only `python app.py` launches a server. This file never
imports `training/`.

Gradio keeps uploads and the images it serves in a cache folder; by default one shared by
every Gradio app of the user (/tmp/gradio). This app uses its own (`private_cache_dir`),
created with mode 0700 unless GRADIO_TEMP_DIR names one.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import gradio as gr
import torch

from ui import (architecture_tab, augment_tab, cards_tab, catsdogs_tab, cifar10_tab, curves_tab,
                explain_tab, mnist_tab)
from ui.catalog import HUB_ENV, Catalog, hub_ids_from_env
from ui.common import MAX_IMAGE_BYTES
from ui.http_limits import limits_middleware

TITLE = "CNN Studio"
DESCRIPTION = ("Classic image classifiers, trained from scratch and published with their evidence: "
               "VGG19-BN on CIFAR-10 and on MNIST, and ResNet50 for cats vs dogs with and without "
               "Random Erasing. Every number on these pages is read from the runs' own files.")

# (label, id, module with build(catalog)), in the order the tabs appear.
TABS = [("CIFAR-10", "cifar10", cifar10_tab), ("MNIST", "mnist", mnist_tab),
        ("Cats vs Dogs", "catsdogs", catsdogs_tab), ("Augmentation", "augmentation", augment_tab),
        ("Architecture", "architecture", architecture_tab), ("Training curves", "curves", curves_tab),
        ("See why", "why", explain_tab), ("Model cards", "cards", cards_tab)]

# Serving limits. One model request at a time per CPU group, a bounded queue: beyond it,
# requests are refused with a clear message instead of piling up.
QUEUE_MAX_SIZE = 16
DEFAULT_CONCURRENCY = 1
MAX_FILE_SIZE = MAX_IMAGE_BYTES          # Gradio's upload limit: the one image byte limit
# The whole request body: the largest legitimate one is an image at the limit sent as a
# base64 data: URL inside JSON (4/3 of its bytes: 13.3 MiB), plus room for the rest.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_THREADS = 8
CACHE_ENV = "GRADIO_TEMP_DIR"            # Gradio's name for its cache folder

CSS = """
.notice { border-left: 4px solid var(--color-accent); padding-left: 0.75em; }
#app-title h1 { margin-bottom: 0; }
#model-card { max-height: 640px; overflow-y: auto; }
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
    private_cache_dir()   # before any component exists: each reads the folder when created
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
    """Keyword arguments for demo.launch(): look and limits. Never share=True by default.

    The request-body cap is ASGI middleware passed to the FastAPI app Gradio builds."""
    return dict(theme=theme(), css=CSS, max_file_size=MAX_FILE_SIZE, max_threads=MAX_THREADS,
                footer_links=["api"], app_kwargs={"middleware": [limits_middleware(MAX_REQUEST_BYTES)]})


def private_cache_dir() -> Path:
    """Gradio's cache folder for this app: $GRADIO_TEMP_DIR if set (created 0700 if missing),
    else a new folder of this process only (mode 0700, removed at exit). Gradio reads the
    variable whenever it creates a component or accepts an upload, so it is set here, once."""
    given = os.environ.get(CACHE_ENV)
    if given:
        path = Path(given)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="cnn-studio-gradio-"))       # mkdtemp: mode 0700
    os.environ[CACHE_ENV] = str(path)
    atexit.register(shutil.rmtree, path, True)
    return path


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
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())


if __name__ == "__main__":
    main()
