"""How the app is served: its look (theme, CSS, the page's script), its limits on every launch
(StudioBlocks), who may use its local features (training, Hub downloads), and a Gradio cache
folder of its own.

Gradio keeps uploads and the images it serves in a cache folder; by default one shared by every
Gradio app of the user (/tmp/gradio). This app uses its own (`private_cache_dir`), created with
mode 0700 unless GRADIO_TEMP_DIR names one.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from ui import serving
from ui.common import ASSETS_DIR, MAX_IMAGE_BYTES
from ui.http_limits import RequestLimits, is_loopback

MAX_FILE_SIZE = MAX_IMAGE_BYTES          # Gradio's upload limit: the one image byte limit
# The whole request body: the largest legitimate one is an image at the limit sent as a
# base64 data: URL inside JSON (4/3 of its bytes: 13.3 MiB), plus room for the rest.
MAX_REQUEST_BYTES = 16 * 1024 * 1024
CACHE_ENV = "GRADIO_TEMP_DIR"            # Gradio's name for its cache folder
# Why the Train tab and the Hub loader are off unless `python app.py` turned them on (training_refusal).
OFF_UNLESS_LOCAL = "it is enabled by `python app.py` on a loopback address, or with --allow-training"
# A Space is started by the platform as `python app.py`, with no flags, and carries no training code:
# its Train tab is this one line, and no notice there offers a flag.
ON_A_SPACE = ("training needs the full CNN Studio project, which this Space does not carry: clone it and run "
              "`python -m training.train --task mnist` (or any task) on your machine")

# The page's look and script, static files beside the example images (a Space carries them too).
CSS = (ASSETS_DIR / "app.css").read_text()
# A Sketchpad says "select the draw tool to start" until its brush is picked: the page picks it
# whenever a drawing tab's brush button appears (tabs are drawn when first shown).
JS = (ASSETS_DIR / "app.js").read_text()


def theme() -> gr.themes.Base:
    # System fonts: no font download, so the app looks the same offline.
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky",
                          font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def launch_options(local_only: bool = False) -> dict:
    """Keyword arguments for demo.launch(): look and limits. Never share=True by default.

    The request limits are ASGI middleware passed to the FastAPI app Gradio builds; `local_only`
    also refuses requests not addressed to this machine (ui/http_limits.py). The app's Blocks
    (StudioBlocks) adds these to every launch itself; passing them again changes nothing."""
    limits = Middleware(RequestLimits, max_body_bytes=MAX_REQUEST_BYTES, local_only=local_only)
    return dict(theme=theme(), css=CSS, js=JS, max_file_size=MAX_FILE_SIZE, max_threads=serving.MAX_THREADS, footer_links=["api"],
                app_kwargs={"middleware": [limits]})


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
