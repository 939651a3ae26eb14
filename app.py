"""CNN Studio: the Gradio app for every trained model.

    python app.py [--runs DIR] [--data-dir DIR] [--host 127.0.0.1] [--port 7860] [--hub REPO_ID ...]

Models come from run directories under --runs (`<task>/<run>/` with config.json and
model.safetensors; the newest per task and variant is the default) and from Hub repos
(--hub; $CNN_STUDIO_HUB_MODELS, or else, in a Space, the `models` its README.md lists; or "Load
from the Hub" in the Models panel), through one loader (models.artifact.load_model). The runs
folder is looked at again on every page load, on "Reload models" and when an API call finds it
changed (ui/catalog.py), so runs trained while the app is up appear without a restart. A model
that cannot be loaded is listed as unavailable with the reason; the app still starts, on the
first classify tab with a model. There is one classify tab per task of models.tasks.TASKS.

Tests import `build_demo`; only `python app.py` launches a server. This file never imports
`training/`. How the app is served (look, limits, its own cache folder): ui/shell.py.
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Sequence

import gradio as gr
import torch

from models.tasks import HUB_MODELS_ENV, TASKS
from ui import architecture_tab, augment_tab, cards_tab, classify_tab, curves_tab, explain_tab, hub_panel, live, serving
from ui import train_tab
from ui.catalog import Catalog, hub_models
from ui.jobs import TrainingJobs
from ui.shell import (CACHE_ENV, CSS, MAX_FILE_SIZE, MAX_REQUEST_BYTES, OFF_UNLESS_LOCAL, ON_A_SPACE,  # noqa: F401
                      StudioBlocks, hub_loading_refusal, launch_options, private_cache_dir, theme, training_refusal)

TITLE = "CNN Studio"
DESCRIPTION = ("Classic image classifiers, trained from scratch and published with their evidence: "
               "VGG19-BN on CIFAR-10 and on MNIST, and ResNet50 for cats vs dogs with and without "
               "Random Erasing. Every number on these pages is read from the runs' own files.")
# (label, id, module with build(catalog)) of the tabs between the classify tabs and the Train tab, in order.
OTHER_TABS = [("Augmentation", "augmentation", augment_tab), ("Architecture", "architecture", architecture_tab),
              ("Training curves", "curves", curves_tab), ("See why", "why", explain_tab),
              ("Model cards", "cards", cards_tab)]
# Each concurrency group (model calls, light pages, ...) has its own limit and queue bound, and each
# model endpoint its share of it (ui/serving.py): beyond it, those requests are refused with a clear
# message instead of piling up. QUEUE_MAX_SIZE bounds all waiting requests together.
QUEUE_MAX_SIZE = 96
# Uploads and answers' images leave the cache an hour after their last use: delete_cache (every, age) in s.
CACHE_EXPIRY = (600, 3600)


def open_first_model_tab(catalog: Catalog):
    """On page load: show the first classify tab with a model; with none, leave the page's tab alone."""
    task = catalog.first_task_with_model(list(TASKS))
    return gr.Tabs(selected=task) if task else gr.skip()


def build_demo(runs: str | os.PathLike | Catalog | None = "runs", hub: Sequence[str] = (), *,
               device: str = "cpu", data_dir: str | os.PathLike | None = None,
               training_off: str | None = OFF_UNLESS_LOCAL, hub_loading_off: str | None = OFF_UNLESS_LOCAL,
               train_device: str = "auto") -> gr.Blocks:
    """The whole app as a gr.Blocks (not launched).

    `runs` is a runs folder (searched for run directories) or an already built Catalog;
    `hub` lists Hub repo ids to load as well; `data_dir` is where datasets are (training's
    --data-dir, for runs the Train tab starts). `training_off` says why the Train tab may not
    start runs (None: it may; runs go into the runs folder, one at a time, on `train_device`);
    `hub_loading_off` why the Models panel may not download Hub repos (a page visitor would choose
    what the server fetches).
    """
    private_cache_dir()   # before any component exists: each reads the folder when created
    catalog = runs if isinstance(runs, Catalog) else Catalog.from_sources(runs, hub, device=device)
    jobs = TrainingJobs(catalog.runs_dir or "runs", data_dir=Path(data_dir or "data"), device=train_device,
                        on_finished=lambda job: catalog.reload())
    trainer = train_tab.Trainer(jobs, training_off or (None if catalog.runs_dir else "this app has no runs folder"))
    with StudioBlocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_EXPIRY) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}", elem_id="app-title")
        problems = bool(catalog.unavailable()) or not catalog.entries(available_only=True)
        with gr.Accordion("Models", open=problems):
            status = live.markdown(catalog, catalog.status_markdown, label="Models", elem_id="model-status")
            reload_button = gr.Button("Reload models", size="sm", elem_id="reload-models")
            hub_repo = hub_panel.build(hub_loading_off)
        with gr.Tabs(selected=catalog.first_task_with_model(list(TASKS)) or next(iter(TASKS))) as tab_bar:
            for task in TASKS.values():
                with gr.Tab(task.title, id=task.name):
                    classify_tab.build(catalog, task=task)
            for label, tab_id, tab in OTHER_TABS:
                with gr.Tab(label, id=tab_id):
                    tab.build(catalog)
            with gr.Tab("Train", id="train"):
                finished = None
                if training_off == ON_A_SPACE:
                    gr.Markdown(f"⚠️ Training is not available here: {ON_A_SPACE}.", elem_id="train-refused")
                else:
                    finished = train_tab.build(catalog, trainer=trainer)
        # New runs appear without a restart: on every page load (which also opens the first tab
        # with a model) and on "Reload models", every model list and notice is rebuilt.
        live.wire(catalog, [demo.load], api_name="open_page", outputs=[status, tab_bar],
                  first=lambda: (catalog.status_markdown(), open_first_model_tab(catalog)))
        live.wire(catalog, [reload_button.click], api_name="reload_models", outputs=[status],
                  first=catalog.status_markdown)
        # A run started from the Train tab finished: every list offers it (the catalog already has it).
        if finished is not None:
            live.wire(catalog, [finished.change], api_name="train_finished", outputs=[status],
                      first=catalog.status_markdown)
        # A Hub repo loaded from the Models panel: every list offers it.
        live.rerender_after(catalog, hub_panel.wire(catalog, hub_repo, status, off=hub_loading_off),
                            api_name=hub_panel.API_NAME)
    demo.catalog = catalog  # for tests and scripts: the models this app serves
    demo.trainer = trainer  # and the training queue of the Train tab
    demo.local_features = training_off is None or hub_loading_off is None
    serving.bound_queue_per_group(demo, max_size=QUEUE_MAX_SIZE)
    return demo


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="CNN Studio: demo every trained model in a browser.")
    p.add_argument("--runs", default="runs", help="folder searched for run directories <task>/<run>/ (default: runs)")
    p.add_argument("--hub", nargs="*", default=[], metavar="REPO_ID",
                   help=f"Hub model repos (user/name[@revision]) to load too; also read from ${HUB_MODELS_ENV}")
    p.add_argument("--host", default=None,
                   help="address to listen on (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 for a Space)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    p.add_argument("--data-dir", default="data",
                   help="datasets folder, as training's --data-dir (default: data), for runs the Train tab starts")
    p.add_argument("--device", default="cpu", help="device for inference (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for the model (default: half the cores, the rest serve requests)")
    p.add_argument("--max-batch", type=int, default=serving.MAX_BATCH,
                   help=f"concurrent requests sharing one forward pass, at most (default {serving.MAX_BATCH}; "
                        "1: each request its own)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--allow-training", action="store_true",
                   help="let the Train tab start training runs, and the Models panel download Hub repos, even "
                        "when the app listens on a non-loopback address or runs as a Space (on a loopback "
                        "address both are allowed by default)")
    p.add_argument("--train-device", default="auto", help="--device of runs started from the Train tab (default auto)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    # SIGTERM (a container or service stopping the app) ends it as Ctrl-C does: the server closes and
    # the exit handlers run, so the private cache folder is removed then too.
    if threading.current_thread() is threading.main_thread():   # `gradio app.py` re-runs main() in its reload thread
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    torch.set_num_threads(args.threads or serving.default_torch_threads())
    serving.set_max_batch(args.max_batch)
    hub = list(dict.fromkeys([*args.hub, *hub_models()]))
    host = args.host or os.environ.get("GRADIO_SERVER_NAME")
    refusal, hub_off = training_refusal(host, args.allow_training), hub_loading_refusal(host, args.allow_training)
    if args.share and not args.allow_training:
        refusal = hub_off = "the app is shared through a public link (start it with --allow-training to enable it)"
    global demo  # module-level, where `gradio app.py` (reload mode) finds the running app
    demo = build_demo(Path(args.runs), hub, device=args.device, data_dir=Path(args.data_dir),
                      training_off=refusal, hub_loading_off=hub_off, train_device=args.train_device)
    if args.share:
        demo.launch(server_name=args.host, server_port=args.port, share=True)
        return
    # Gradio's own start-up lines end with "set `share=True` in `launch()`", advice for a script
    # calling launch(); this app's switch is --share, so it prints its own lines instead.
    demo.launch(server_name=args.host, server_port=args.port, share=False, quiet=True, prevent_thread_lock=True,
                any_host=args.allow_training)
    if not demo.is_running:   # `gradio app.py` re-ran this file to reload it: its server is already up
        return
    hint = "" if os.environ.get("SPACE_ID") else "\n* To create a public link, run: python app.py --share"
    print(f"* Running on local URL:  {demo.local_url}{hint}", flush=True)
    demo.block_thread()


def __getattr__(name: str):
    """`app.demo`: the app for ./runs and the Hub models (`hub_models`), built on first use (Gradio's
    module-level `demo`), so that importing app.py builds and launches nothing."""
    if name == "demo":
        global demo
        demo = build_demo(Path("runs"), hub_models())
        return demo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
