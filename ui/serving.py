"""How the app serves many users at once on a few CPU cores.

- Concurrency groups, each with its own limit (events running at once) and its own queue bound
  (events waiting). Gradio's `queue(max_size=...)` counts the waiting events of every group
  together, so a burst of slow model calls would refuse the cheap pages too ("Queue is full");
  `GroupBoundedQueue` refuses an event only when its own group is full, or when its own event
  (endpoint) already has its share of the group's queue: a burst on one model endpoint leaves
  room for the others.
- `ForwardBatcher`: concurrent requests for the same model share one forward pass.
- `image_file`: an output image handed to Gradio as a file written once under a content name,
  never rewritten while another client may be downloading it.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import torch
from gradio import queueing, route_utils
from gradio.utils import get_upload_folder
from PIL import Image


@dataclass(frozen=True)
class Group:
    """A concurrency group: `limit` events of it run at once, at most `max_waiting` wait, at most
    `max_waiting_each` of them for any one event (endpoint)."""
    id: str
    limit: int
    max_waiting: int
    max_waiting_each: int | None = None

    def event_options(self) -> dict:
        """Keyword arguments for an event listener (gr.on, .click, ...) of this group."""
        return dict(concurrency_id=self.id, concurrency_limit=self.limit)


# Model calls: up to MAX_BATCH requests decode and preprocess their images in parallel and share
# forward passes (ForwardBatcher); the forward passes themselves run one at a time.
MAX_BATCH = 8
INFERENCE = Group("inference", limit=MAX_BATCH, max_waiting=48, max_waiting_each=16)
# Pages that read files (cards, curves, architecture tables, augmentation grids): never wait
# behind model calls.
LIGHT = Group("light", limit=4, max_waiting=32)
GROUPS = (INFERENCE, LIGHT)
# Any other event (example loaders) is its own group of one running event and this many waiting.
OTHER_MAX_WAITING = 16
# Gradio runs each event in a worker thread from one pool; a pool smaller than the groups' limits
# together would let one group's running events take every thread and starve the others.
OTHER_THREADS = 8
MAX_THREADS = sum(g.limit for g in GROUPS) + OTHER_THREADS


def default_torch_threads() -> int:
    """Torch intra-op threads for serving: half the cores (at least one).

    The other half decode uploads, encode answers and run Gradio's server. With every core given
    to torch, each forward pass waits for a thread that a request thread holds (on the 2-core
    development machine, under load: 420 ms for the MNIST forward pass with 2 threads, 70 ms with 1).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 2)


class GroupBoundedQueue(queueing.Queue):
    """Gradio's queue with a bound per concurrency group (see `bound_queue_per_group`, which sets
    max_waiting_per_group, max_waiting_each and max_waiting_other)."""

    async def push(self, body, request, username):
        try:
            fn = route_utils.get_fn(self.blocks, None, body) if body.fn_index is not None else None
        except (KeyError, IndexError):
            fn = None   # Gradio's own push answers an unknown event
        if fn is not None:
            bound = self.max_waiting_per_group.get(fn.concurrency_id, self.max_waiting_other)
            share = self.max_waiting_each.get(fn.concurrency_id)
            waiting = getattr(self.event_queue_per_concurrency_id.get(fn.concurrency_id), "queue", [])
            same = sum(event.fn is fn for event in waiting)
            if bound is not None and len(waiting) >= bound:
                return (False, f"Queue is full: {len(waiting)} requests of this kind are waiting (at most {bound}); "
                               "try again in a moment.", "queue_full")
            if share is not None and same >= share:
                return (False, f"Queue is full: {same} requests for /{fn.api_name} are waiting (at most {share} "
                               "for one endpoint); try again in a moment.", "queue_full")
        return await super().push(body, request, username)


def bound_queue_per_group(demo, max_size: int | None = None) -> None:
    """demo.queue(...), then each concurrency group refuses new events only when its own queue is full.

    `max_size` stays Gradio's bound on all waiting events together (None: the groups' bounds only).
    Gradio has no per-group bound, so its queue object (created by demo.queue) gets this subclass:
    same state, one extra check before Gradio's own in `push`.
    """
    demo.queue(max_size=max_size, default_concurrency_limit=1)
    queue = demo._queue
    if type(queue) not in (queueing.Queue, GroupBoundedQueue):   # a Gradio that builds its queue differently: fail loudly
        raise TypeError(f"unexpected Gradio queue type {type(queue).__name__}")
    queue.__class__ = GroupBoundedQueue
    queue.max_waiting_per_group = {g.id: g.max_waiting for g in GROUPS}
    queue.max_waiting_each = {g.id: g.max_waiting_each for g in GROUPS if g.max_waiting_each is not None}
    queue.max_waiting_other = OTHER_MAX_WAITING


# --- one forward pass for concurrent requests ----------------------------------------------------

# On a CPU, two forward passes at once only compete for the same cores (and the request threads'
# work in between), so every model's forward passes take turns.
_FORWARD_TURN = threading.Lock()


class ForwardBatcher:
    """`batcher(x)` == `model(x)` for one input (1, C, H, W), with concurrent calls combined.

    Whoever gets the turn runs the model on every input waiting (up to `max_batch`, first come
    first served) and hands each caller its row (a Future per call); a lone request runs at once, unbatched.
    """

    def __init__(self, model: torch.nn.Module, max_batch: int | None = None):
        self.model, self.max_batch = model, max_batch     # None: MAX_BATCH (app.py --max-batch) at each turn
        self._waiting: list[tuple[torch.Tensor, Future]] = []
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        call = Future()
        with self._lock:
            self._waiting.append((x, call))
        while not call.done():
            with _FORWARD_TURN:
                if call.done():
                    break
                n = self.max_batch or MAX_BATCH
                with self._lock:
                    batch, self._waiting = self._waiting[:n], self._waiting[n:]
                self._run(batch)
        return call.result()

    def _run(self, batch: list[tuple[torch.Tensor, Future]]) -> None:
        try:
            out = self.model(torch.cat([x for x, _ in batch]) if len(batch) > 1 else batch[0][0])
        except Exception as e:  # noqa: BLE001 - handed to each caller, raised in its own thread
            for _, call in batch:
                call.set_exception(e)
            return
        for i, (_, call) in enumerate(batch):
            call.set_result(out[i:i + 1])


_BATCHERS: "weakref.WeakKeyDictionary[torch.nn.Module, ForwardBatcher]" = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


def batcher_for(model: torch.nn.Module) -> ForwardBatcher:
    """The one ForwardBatcher of a model (models reloaded while the app runs get a new one)."""
    with _BATCHERS_LOCK:
        if model not in _BATCHERS:
            _BATCHERS[model] = ForwardBatcher(model)
        return _BATCHERS[model]


def set_max_batch(n: int) -> None:
    """At most `n` requests per forward pass from now on (1: each request its own; app.py --max-batch)."""
    global MAX_BATCH
    if n < 1:
        raise ValueError(f"max batch must be at least 1, got {n}")
    MAX_BATCH = n


# --- output images as files written once ---------------------------------------------------------

def image_file(img: Image.Image, name: str = "image") -> str:
    """A PNG of `img` inside Gradio's cache folder, named by its content; returned as a path.

    Gradio saves a returned PIL image by rewriting `<cache>/<hash>/image.png` in place, so two
    concurrent answers with the same picture rewrite the file while a client downloads it
    (truncated or empty downloads). Here the file is written once, under a temporary name and
    renamed into place; an existing one is reused, never rewritten. A path inside the cache
    folder is served as it is (no copy).
    """
    buf = BytesIO()
    img.save(buf, format="PNG")
    data = buf.getvalue()
    folder = Path(get_upload_folder()) / "cnn-studio" / hashlib.sha256(data).hexdigest()
    path = folder / f"{name}.png"
    try:    # handed out again: its age restarts (Gradio's delete_cache goes by ctime), its content stays
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(staging, 0o644)
            os.replace(staging, path)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
    return str(path)


def images_as_files(fn):
    """`fn` with every PIL image it returns (alone or in a tuple) handed over as `image_file(...)`.

    For event wiring: the handler stays a plain function returning images (as tests call it).
    """
    @functools.wraps(fn)
    def serve(*args, **kwargs):
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(image_file(o) if isinstance(o, Image.Image) else o for o in out)
        return image_file(out) if isinstance(out, Image.Image) else out
    return serve
