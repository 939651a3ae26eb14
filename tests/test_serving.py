"""Serving under load (ui/serving.py): concurrency groups with their own queue bounds, forward
passes shared by concurrent requests, output images that are never rewritten while downloaded.

The server tests use the session's launched app (tests/conftest.py: app_server) and real
gradio_client clients; they wait on synchronisation points (a gate inside the model call, the
server's queue length), never on sleeps or timings.
"""
from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ui import classify_tab, serving

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CLIENTS = 16
REQUESTS_PER_CLIENT = 2
PROBABILITY_ATOL = 1e-6   # a batched forward pass sums in another order: ~1e-8 apart, never more
# gradio_client's HTTP calls time out after httpx's 5 s default: too short for a loaded 2-core test
# machine (a hang guard, not a timing requirement).
HTTP = {"timeout": 300}


def wait_until(condition, what: str, timeout: float = 180.0) -> None:
    """Poll a synchronisation point (not a timing assertion: the deadline only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


# --- issue 14 §4: a busy model group does not lock the cheap pages out --------------------------

def test_a_full_model_queue_refuses_model_calls_only_and_the_cheap_pages_keep_answering(app_server, monkeypatch,
                                                                                         tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError
    demo, url = app_server
    gate, started = threading.Event(), threading.Semaphore(0)
    real_run_model = classify_tab.run_model

    def held_run_model(entry, img):   # the model call waits at the gate: the group stays busy
        started.release()
        assert gate.wait(timeout=300), "the test never opened the gate"
        return real_run_model(entry, img)

    monkeypatch.setattr(classify_tab, "run_model", held_run_model)
    client = Client(url, verbose=False, download_files=False, httpx_kwargs=HTTP)
    image = handle_file(ASSETS / "cat_drawing.png")
    running, waiting = serving.INFERENCE.limit, serving.INFERENCE.max_waiting_each   # one endpoint: its share
    model_queue = lambda: demo._queue.event_queue_per_concurrency_id.get(serving.INFERENCE.id)  # noqa: E731
    jobs = []
    try:
        jobs += [client.submit(image, api_name="/classify_catdog") for _ in range(running)]
        for _ in range(running):
            assert started.acquire(timeout=300), "the model calls never started"
        jobs += [client.submit(image, api_name="/classify_catdog") for _ in range(waiting)]
        wait_until(lambda: model_queue() is not None and len(model_queue().queue) == waiting,
                   f"{waiting} classify_catdog calls waiting in the model queue")
        with pytest.raises((QueueError, AppError)) as refused:   # the model group is full ...
            client.predict(image, api_name="/classify_catdog")
        assert "queue is full" in str(refused.value).lower()
        # ... and the cheap pages answer meanwhile, before any of the model calls is done.
        card, _ = client.predict("cifar10/tiny", api_name="/model_card")
        table, totals = client.predict("Cats vs Dogs: resnet50", 1, api_name="/architecture")
        assert "CIFAR-10" in card and "23,510,081" in totals
        assert not any(job.done() for job in jobs), "a model call finished while the gate was closed"
        assert len(model_queue().queue) == waiting
    finally:
        gate.set()
    answers = [job.result(timeout=600) for job in jobs]
    assert all(a[:2] == answers[0][:2] for a in answers), "the held calls gave different answers"


# --- issue 16: concurrent clients get the sequential answers, images included --------------------

def _images(task: str, count: int = 4) -> list[Path]:
    names = ["mnist_3.png", "mnist_7.png"] if task == "mnist" else ["sample_boat.png", "cat_drawing.png"]
    return [ASSETS / names[i % len(names)] for i in range(count)]


def _varied(paths: list[Path], tmp_path: Path) -> list[Path]:
    """Distinct files: the originals and their mirror images."""
    out = []
    for i, p in enumerate(paths):
        if i >= len(paths) // 2:
            q = tmp_path / f"mirror-{i}-{p.name}"
            ImageOps.mirror(Image.open(p)).save(q)
            p = q
        out.append(p)
    return out


def _payload(api: str, path: Path):
    from gradio_client import handle_file
    if api == "/classify_digit":
        return {"background": None, "layers": [], "composite": handle_file(path)}
    return handle_file(path)


def _canonical(value):
    """Answer -> comparable: downloaded files by the sha256 of their bytes (empty files fail)."""
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, str) and Path(value).is_file():
        data = Path(value).read_bytes()
        assert data, f"downloaded an empty file: {value}"
        return ("file", hashlib.sha256(data).hexdigest())
    return value


def _assert_same(answer, reference, where: str) -> None:
    if isinstance(reference, float):
        assert answer == pytest.approx(reference, abs=PROBABILITY_ATOL), where
    elif isinstance(reference, list):
        assert isinstance(answer, list) and len(answer) == len(reference), where
        for i, (a, r) in enumerate(zip(answer, reference)):
            _assert_same(a, r, f"{where}[{i}]")
    elif isinstance(reference, dict):
        assert isinstance(answer, dict) and answer.keys() == reference.keys(), where
        for k in reference:
            _assert_same(answer[k], reference[k], f"{where}.{k}")
    else:
        assert answer == reference, where


# /classify_digit_image is /classify_digit's answer for an upload; what the model sees is its own endpoint.
@pytest.mark.parametrize("api, task", [("/classify_cifar10", "cifar10"), ("/model_input_digit_image", "mnist"),
                                       ("/classify_digit", "mnist"), ("/classify_catdog", "catsdogs")])
def test_sixteen_concurrent_clients_get_the_sequential_answers_images_included(app_server, app_catalog, tmp_path,
                                                                                api, task):
    from gradio_client import Client
    _, url = app_server
    images = _varied(_images(task), tmp_path)
    clients = [Client(url, verbose=False, download_files=str(tmp_path / f"client-{i}"), httpx_kwargs=HTTP)
               for i in range(CLIENTS)]
    reference = {p: _canonical(clients[0].predict(_payload(api, p), api_name=api)) for p in images}
    if api.startswith("/model_input_"):
        assert all(isinstance(ref, tuple) for ref in reference.values()), "the answers are the model-input images"

    def user(i: int) -> list:
        out = []
        for r in range(REQUESTS_PER_CLIENT):
            path = images[(i + r) % len(images)]
            out.append((path, _canonical(clients[i].predict(_payload(api, path), api_name=api))))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for user_answers in pool.map(user, range(CLIENTS)) for a in user_answers]   # raises on any error
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    for path, answer in answers:
        _assert_same(answer, reference[path], f"{api} {path.name}")


# --- the parts ----------------------------------------------------------------------------------

class _GatedModel(torch.nn.Module):
    """A linear model whose first forward pass waits at a gate, so that other calls queue up."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(12, 5)
        self.entered, self.gate, self.batches = threading.Event(), threading.Event(), []

    def forward(self, x):
        self.batches.append(x.shape[0])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(timeout=60)
        return self.linear(x.flatten(1))


def test_concurrent_calls_share_a_forward_pass_and_each_gets_its_own_row():
    model = _GatedModel().eval()
    batcher = serving.ForwardBatcher(model, max_batch=4)
    inputs = [torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(7)]
    with ThreadPoolExecutor(7) as pool:
        first = pool.submit(batcher, inputs[0])
        assert model.entered.wait(timeout=60)
        rest = [pool.submit(batcher, x) for x in inputs[1:]]
        wait_until(lambda: len(batcher._waiting) == 6, "six calls waiting for the model")
        model.gate.set()
        outputs = [first.result(timeout=60)] + [f.result(timeout=60) for f in rest]
    assert model.batches == [1, 4, 2]       # the lone first call, then the waiting six, at most four at once
    with torch.no_grad():
        for x, out in zip(inputs, outputs):
            assert out.shape == (1, 5)
            torch.testing.assert_close(out, model.linear(x.flatten(1)), rtol=0, atol=1e-6)


def test_a_failing_forward_pass_fails_its_own_callers_and_the_next_one_works():
    class Flaky(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("out of memory")
            return x * 2

    batcher = serving.ForwardBatcher(Flaky())
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher(torch.ones(1, 2))
    assert torch.equal(batcher(torch.ones(1, 2)), torch.full((1, 2), 2.0))


def test_an_output_image_is_written_once_and_never_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    with ThreadPoolExecutor(8) as pool:
        paths = set(pool.map(lambda _: serving.image_file(img, "model_input"), range(32)))
    [path] = paths                                   # one content, one file
    assert Path(path).parent.parent.parent == tmp_path and Path(path).name == "model_input.png"
    first = Path(path).stat()
    assert serving.image_file(img, "model_input") == path
    again = Path(path).stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)   # not rewritten
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(img))
    assert [p.name for p in Path(path).parent.iterdir()] == ["model_input.png"]     # no staging files left
    other = serving.image_file(Image.fromarray(np.zeros((4, 4, 3), np.uint8)), "model_input")
    assert other != path


def test_the_queue_bounds_are_per_group(app_server):
    demo, _ = app_server
    queue = demo._queue
    assert isinstance(queue, serving.GroupBoundedQueue)
    assert queue.max_waiting_per_group == {g.id: g.max_waiting for g in serving.GROUPS}
    by_api = {fn.api_name: fn for fn in demo.fns.values()}
    for api in ("classify_cifar10", "classify_digit", "classify_digit_image", "classify_catdog", "gradcam"):
        assert by_api[api].concurrency_id == serving.INFERENCE.id
    for api in ("model_card", "architecture", "curves", "augment"):
        assert by_api[api].concurrency_id == serving.LIGHT.id
    # Gradio's worker threads can run every group at its limit at once.
    assert demo.max_threads >= sum(g.limit for g in serving.GROUPS)
