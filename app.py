"""CNN Studio: the Gradio app for every trained model.

    python app.py [--runs DIR] [--data-dir DIR] [--host 127.0.0.1] [--port 7860] [--hub REPO_ID ...]

Models come from run directories under --runs (`<task>/<run>/` with config.json and
model.safetensors; the newest per task and variant is the default) and from Hub repos
(--hub; the CNN_STUDIO_HUB_MODELS environment variable, space- or comma-separated, or else,
in a Space, the `models` its README.md lists; or "Load from the Hub" in the Models panel, with a
progress bar), through the same loader (models.artifact.load_model). The runs folder is looked
at again on every page load, on "Reload models" and when an API call finds it changed
(ui/catalog.py), so runs trained while the app is up appear without a restart. A model that
cannot be loaded is listed as unavailable with the reason; the app still starts. The app opens
on the first classify tab that has a model.

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
import signal
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import gradio as gr
import torch

from ui import (architecture_tab, augment_tab, cards_tab, catsdogs_tab, cifar10_tab, curves_tab,
                explain_tab, hub_panel, live, mnist_tab, serving, train_tab)
from models.tasks import HUB_MODELS_ENV
from ui.catalog import Catalog, hub_ids_from_env
from ui.common import MAX_IMAGE_BYTES
from ui.http_limits import RequestLimits, is_loopback, limits_middleware
from ui.jobs import TrainingJobs

TITLE = "CNN Studio"
DESCRIPTION = ("Classic image classifiers, trained from scratch and published with their evidence: "
               "VGG19-BN on CIFAR-10 and on MNIST, and ResNet50 for cats vs dogs with and without "
               "Random Erasing. Every number on these pages is read from the runs' own files.")

# (label, id, module with build(catalog)), in the order the tabs appear. The first three are the
# classify tabs: the app opens on the first of them that has a model.
TABS = [("CIFAR-10", "cifar10", cifar10_tab), ("MNIST", "mnist", mnist_tab),
        ("Cats vs Dogs", "catsdogs", catsdogs_tab), ("Augmentation", "augmentation", augment_tab),
        ("Architecture", "architecture", architecture_tab), ("Training curves", "curves", curves_tab),
        ("See why", "why", explain_tab), ("Model cards", "cards", cards_tab), ("Train", "train", train_tab)]

# Serving limits. Each concurrency group (model calls, light pages, ...) has its own limit and
# its own queue bound, and each model endpoint its share of it (ui/serving.py): beyond it, those
# requests are refused with a clear message instead of piling up, and the others keep answering.
# QUEUE_MAX_SIZE bounds all waiting requests together (the groups' bounds added up).
QUEUE_MAX_SIZE = 96
DEFAULT_CONCURRENCY = 1
MAX_FILE_SIZE = MAX_IMAGE_BYTES          # Gradio's upload limit: the one image byte limit
# The whole request body: the largest legitimate one is an image at the limit sent as a
# base64 data: URL inside JSON (4/3 of its bytes: 13.3 MiB), plus room for the rest.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_THREADS = serving.MAX_THREADS
CACHE_ENV = "GRADIO_TEMP_DIR"            # Gradio's name for its cache folder
# Uploads and answers' images leave the cache folder an hour after their last use (checked every
# ten minutes): Gradio's delete_cache (frequency, age) in seconds.
CACHE_EXPIRY = (600, 3600)

CSS = """
.notice { border-left: 4px solid var(--color-accent); padding-left: 0.75em; }
#app-title h1 { margin-bottom: 0; }
#model-card { max-height: 640px; overflow-y: auto; }
#model-card th, #model-card td { word-break: normal; overflow-wrap: normal; }
#model-card thead:not(:has(th:not(:empty))) { display: none; }
/* Galleries that show every image: no inner scroll cutting the last row, as many columns as fit. */
.whole-gallery .grid-wrap.fixed-height { max-height: none; min-height: 0; }
.whole-gallery .grid-wrap .grid-container { grid-template-columns: repeat(auto-fill, minmax(136px, 1fr)); }
.whole-gallery .thumbnail-item .caption-label { white-space: normal; overflow-wrap: anywhere; }
#architecture-table td:first-child { font-family: var(--font-mono); }
"""


def theme() -> gr.themes.Base:
    # System fonts: no font download, so the app looks the same offline.
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky",
                          font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


CLASSIFY_TABS = {"cifar10": "cifar10", "mnist": "mnist", "catsdogs": "catsdogs"}   # task -> tab id
# Why the Train tab and the Models panel's Hub loader are off in an app built without saying
# (app.demo, tests): `python app.py` turns them on for a loopback address (training_refusal).
OFF_UNLESS_LOCAL = "it is enabled by `python app.py` on a loopback address, or with --allow-training"
# A Space is started by the platform as `python app.py`, with no flags, and carries no training code:
# its Train tab is this one line, and no notice there offers a flag.
ON_A_SPACE = ("training needs the full CNN Studio project, which this Space does not carry: clone it and run "
              "`python -m training.train --task mnist` (or any task) on your machine")
SPACE_README = Path(__file__).with_name("README.md")   # a Space's header lists the models it serves


def opening_tab(catalog: Catalog) -> str:
    """The first classify tab whose task has a model (else the first tab)."""
    task = catalog.first_task_with_model(list(CLASSIFY_TABS))
    return CLASSIFY_TABS[task] if task else TABS[0][1]


def training_refusal(host: str | None, allow_training: bool, environ=os.environ) -> str | None:
    """Why the Train tab is off (None: on). On by default only on a loopback address, never on a Space."""
    if environ.get("SPACE_ID"):
        return ON_A_SPACE
    if allow_training:
        return None
    if not is_loopback(host):
        return f"the app listens on {host}, not a loopback address (start it with --allow-training to enable it)"
    return None


def hub_loading_refusal(host: str | None, allow_training: bool, environ=os.environ) -> str | None:
    """Why the Models panel may not download Hub repos (None: it may); as training, but a Space with the
    flag may, and a Space without it says what it serves instead of a flag its platform never passes."""
    if environ.get("SPACE_ID") and not allow_training:
        return "this app runs as a Hugging Face Space, serving the models its README lists (`models:`)"
    return training_refusal(host, allow_training, {})


def hub_models(environ=os.environ, readme: Path = SPACE_README) -> list[str]:
    """The Hub repos to serve: $CNN_STUDIO_HUB_MODELS if set, else the `models` of a Space's README
    next to this file, each at the commit its `preload_from_hub` line pins (the platform has
    downloaded them there at build time; the loader then finds them in its Hub cache)."""
    listed = hub_ids_from_env(environ)
    if listed or not readme.is_file():
        return listed
    from huggingface_hub.repocard import metadata_load
    meta = metadata_load(readme) or {}
    pins = {}
    for entry in meta.get("preload_from_hub") or []:
        repo, *rest = str(entry).split()
        if len(rest) == 2:                 # "repo files commit": pinned to a commit
            pins[repo] = rest[1]
    return [f"{m}@{pins[m]}" if m in pins else m for m in meta.get("models") or [] if isinstance(m, str)]


def open_first_model_tab(catalog: Catalog):
    """On page load: show the first classify tab with a model; with none, leave the page's tab alone."""
    task = catalog.first_task_with_model(list(CLASSIFY_TABS))
    return gr.Tabs(selected=CLASSIFY_TABS[task]) if task else gr.skip()


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
    options = {"train": {"trainer": trainer}}
    built = {}
    with StudioBlocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_EXPIRY) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}", elem_id="app-title")
        problems = bool(catalog.unavailable()) or not catalog.entries(available_only=True)
        with gr.Accordion("Models", open=problems):
            status = live.markdown(catalog, catalog.status_markdown, label="Models", elem_id="model-status")
            reload_button = gr.Button("Reload models", size="sm", elem_id="reload-models")
            hub_repo, hub_button = hub_panel.build(hub_loading_off)
        with gr.Tabs(selected=opening_tab(catalog)) as tabs:
            for label, tab_id, tab in TABS:
                with gr.Tab(label, id=tab_id):
                    if tab_id == "train" and training_off == ON_A_SPACE:
                        gr.Markdown(f"⚠️ Training is not available here: {ON_A_SPACE}.", elem_id="train-refused")
                        continue
                    built[tab_id] = tab.build(catalog, **options.get(tab_id, {}))
        # New runs appear without a restart: on every page load (which also opens the first tab
        # with a model) and on "Reload models", every model list and notice is rebuilt.
        live.wire(catalog, [demo.load], api_name="open_page", outputs_first=(status, tabs),
                  first=lambda: [catalog.status_markdown(), open_first_model_tab(catalog)])
        live.wire(catalog, [reload_button.click], api_name="reload_models", outputs_first=(status,),
                  first=lambda: [catalog.status_markdown()])
        # A run started from the Train tab finished: every list offers it (the catalog already has it).
        if "train" in built:
            live.wire(catalog, [built["train"].change], api_name="train_finished", outputs_first=(status,),
                      first=lambda: [catalog.status_markdown()])
        # A Hub repo loaded from the Models panel: every list offers it.
        live.rerender_after(catalog, hub_panel.wire(catalog, hub_repo, hub_button, status, off=hub_loading_off),
                            api_name=hub_panel.API_NAME)
    demo.catalog = catalog  # for tests and scripts: the models this app serves
    demo.trainer = trainer  # and the training queue of the Train tab
    demo.local_features = training_off is None or hub_loading_off is None
    serving.bound_queue_per_group(demo, max_size=QUEUE_MAX_SIZE, default_concurrency_limit=DEFAULT_CONCURRENCY)
    return demo


def launch_options(local_only: bool = False) -> dict:
    """Keyword arguments for demo.launch(): look and limits. Never share=True by default.

    The request limits are ASGI middleware passed to the FastAPI app Gradio builds; `local_only`
    also refuses requests not addressed to this machine (ui/http_limits.py). The app's Blocks
    (StudioBlocks) adds these to every launch itself; passing them again changes nothing."""
    return dict(theme=theme(), css=CSS, max_file_size=MAX_FILE_SIZE, max_threads=MAX_THREADS, footer_links=["api"],
                app_kwargs={"middleware": [limits_middleware(MAX_REQUEST_BYTES, local_only=local_only)]})


class StudioBlocks(gr.Blocks):
    """The app's gr.Blocks: however it is served, it serves with the app's look and limits.

    Gradio 6 takes the theme, the upload limit and the FastAPI app's middleware (the request-body
    cap) as launch() arguments, so a launch that forgets them (`app.demo.launch()` in a script,
    a host that launches the module-level `demo` itself) would serve without the cap. Here every
    launch starts from launch_options(); what the caller passes wins, except that the request
    limits are always among the middleware. With the Train tab or the Hub loader on, on a loopback
    address, without a public link and unless `any_host` (--allow-training): only requests addressed
    to this machine are answered (DNS rebinding)."""

    local_features = False      # build_demo: the Train tab or the Hub loader is on

    def launch(self, *args, any_host: bool = False, **kwargs):
        host = kwargs.get("server_name") or os.environ.get("GRADIO_SERVER_NAME")
        options = launch_options(self.local_features and is_loopback(host) and not kwargs.get("share") and not any_host)
        app_kwargs = dict(kwargs.pop("app_kwargs", None) or {})
        middleware = list(app_kwargs.get("middleware") or [])
        if not any(getattr(m, "cls", None) is RequestLimits for m in middleware):
            middleware = options["app_kwargs"]["middleware"] + middleware
        return super().launch(*args, **{**options, **kwargs, "app_kwargs": {**app_kwargs, "middleware": middleware}})


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
    print(startup_message(demo.local_url), flush=True)
    demo.block_thread()


def startup_message(local_url: str) -> str:
    hint = "" if os.environ.get("SPACE_ID") else "\n* To create a public link, run: python app.py --share"
    return f"* Running on local URL:  {local_url}{hint}"


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
