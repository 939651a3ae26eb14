"""Hostile requests sent to a launched app (issue 23, "Nothing let in, round three"; issue 22 §2;
issue 25 §1): each test sends what the issue sent, through a real server, and checks the answer.

Two apps: the session's (tests/conftest.py app_server) for what only reads, and `local_app`, as
`python app.py` serves on 127.0.0.1 (Train tab and Hub loading on), over a runs folder and a Hub
cache laid out here: broken, unverified and linked runs, a Hub repo as huggingface_hub stores it
(blobs/ + snapshots/<commit>/ links + refs/main), with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, launch_app
from tests.test_image_inputs import encode, photo
from tests.test_serving import wait_until

META = {"_type": "gradio.FileData"}
SECRET = "SECRET-CARD-TEXT-41"


def _call(url: str, api: str, data: list, content_type: str = "application/json", headers: dict | None = None,
          timeout: float = 60) -> tuple[str, str]:
    """POST /gradio_api/call/<api> with a raw body, then its result: (event name, data), or ("http", status body)."""
    base = url.rstrip("/")
    response = httpx.post(f"{base}/gradio_api/call/{api}", content=json.dumps({"data": data}),
                          headers={"content-type": content_type, **(headers or {})}, timeout=timeout)
    if response.status_code != 200:
        return "http", f"{response.status_code} {response.text}"
    event, payload = "", ""
    with httpx.stream("GET", f"{base}/gradio_api/call/{api}/{response.json()['event_id']}", timeout=timeout) as s:
        for line in s.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                return event, line.split(":", 1)[1].strip()
    return event, payload


def _message(event: str, payload: str) -> str | None:
    """The one-line error of a refused call; None when it was answered."""
    if event == "complete":
        return None
    if event == "http":
        return json.loads(payload.partition(" ")[2]).get("error")
    return (json.loads(payload) or {}).get("error")


def _refused(url: str, api: str, data: list, **kwargs) -> str:
    message = _message(*_call(url, api, data, **kwargs))
    assert message, f"/{api} {str(data)[:200]}: answered, or refused without a message"
    assert "\n" not in message and "Traceback" not in message and len(message) < 600, message
    return message


def _upload(url: str, data: bytes, name: str = "x.png") -> str:
    response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload", files={"files": (name, data, "image/png")},
                          timeout=60)
    response.raise_for_status()
    return response.json()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- 1. an image input is an upload of this app, or a data: URL; nothing else is opened --------------

NOT_AN_UPLOAD = ("not a file uploaded to this app: upload it first (POST /gradio_api/upload) "
                 "or send the image as a data: URL")


def test_an_image_input_opens_only_this_apps_uploads_whatever_the_body(app_server, tmp_path):
    _, url = app_server
    private = tmp_path / "private.png"
    private.write_bytes(encode(photo(), "PNG"))                   # a real image: reading it would answer
    inside = Path(os.environ["GRADIO_TEMP_DIR"]) / f"hostile-{os.getpid()}-{time.monotonic_ns()}"
    inside.mkdir()                                                # in the app's cache, not Gradio's uploads
    (inside / "link.png").symlink_to(private)
    os.mkfifo(inside / "fifo.png")
    (inside / "folder.png").mkdir()
    paths = [str(private), "/dev/zero", "/proc/self/environ", str(tmp_path / "missing.png"), str(tmp_path),
             str(inside / "link.png"), str(inside / "fifo.png"), str(inside / "folder.png")]
    calls = {"classify_cifar10": lambda v: [v, None], "augment": lambda v: ["MNIST", None, v, 0, 1],
             "classify_digit": lambda v: [{"background": None, "layers": [], "composite": {**v, "meta": META}}, None]}
    for content_type in ("application/json", "application/vnd.x+json"):
        for value in [{"path": p} for p in paths] + [{"path": p, "meta": META} for p in paths]:
            for api, data in calls.items():
                message = _refused(url, api, data(value), content_type=content_type, timeout=30)
                # One message for every path: nothing tells what exists on the server.
                assert message.endswith(NOT_AN_UPLOAD) and value["path"] not in message, (api, value, message)
    # Eight calls naming a FIFO in the cache at once do not hold the model endpoints.
    fifo = {"path": str(inside / "fifo.png"), "meta": META}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda api: _call(url, api, [fifo, None], timeout=30),
                                ["classify_digit_image", "classify_cifar10"] * 4))
    assert all(NOT_AN_UPLOAD in (_message(*a) or "") for a in answers), answers
    upload = {"path": _upload(url, encode(photo(seed=2), "PNG")), "meta": META}
    assert _call(url, "classify_cifar10", [upload, None], timeout=60)[0] == "complete"


# --- 2. the work of a request is bounded by what it computes ----------------------------------------

def test_the_smallest_occlusion_box_is_refused_at_once_in_one_line(app_server):
    _, url = app_server
    upload = {"path": _upload(url, encode(photo(160, 120), "PNG")), "meta": META}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss          # KiB; the server runs in this process
    for fine in (False, True):
        started = time.monotonic()
        message = _refused(url, "occlusion_sweep", [upload, None, None, 1, fine, "mean"], timeout=60)
        assert message.startswith("box_size 1") and "50,176 box positions" in message and "use box_size" in message
        assert time.monotonic() - started < 30, "the refusal came after the work"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 512 * 1024


def test_an_occlusion_sweep_builds_one_batch_of_occluded_copies_at_a_time(app_catalog, monkeypatch):
    from analysis import explain
    from models.predict import prepare
    loaded = app_catalog.get(None, "cifar10").loaded
    x = prepare(photo(), loaded.config, task_step=False)[0]
    built, seen = [0], []
    real_erase = explain.erase
    monkeypatch.setattr(explain, "erase", lambda *a, **k: built.__setitem__(0, built[0] + 1) or real_erase(*a, **k))
    hook = loaded.model.register_forward_pre_hook(lambda module, args: seen.append((built[0], args[0].shape[0])))
    try:
        occlusion = explain.occlusion_sweep(loaded.model, loaded.config, x, box=1, stride=1, batch_size=16)
    finally:
        hook.remove()
    assert occlusion.probs.shape == (32, 32) and built[0] == 32 * 32
    evaluated = 0
    for made, batch in seen:
        assert made - evaluated <= 16, f"{made - evaluated} occluded copies built before the model saw them"
        evaluated += batch


# --- 3, 4, 6, 8, 9: the app as `python app.py` serves it on 127.0.0.1, over hostile folders ------------

def hub_repo(cache: Path, repo_id: str, run: Path, commit: str = "1" * 40) -> Path:
    """`run`'s release files as huggingface_hub caches a downloaded repo: blobs/<sha256>, and
    snapshots/<commit>/<name> relative links to them, refs/main naming the commit. The snapshot."""
    from models.artifact import RELEASE_PATTERNS
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for pattern in RELEASE_PATTERNS:
        for file in run.glob(pattern):
            data = file.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            link = snapshot / file.relative_to(run)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def _copy_run(run: Path, to: Path, *skip: str) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("checkpoint.pt", "tb", "progress.json", *skip))
    return to


@pytest.fixture(scope="module")
def local_app(tmp_path_factory, cifar10_run, catsdogs_run):
    """(demo, url, runs folder, Hub cache, outside folder): runs/cifar10/ holds a good run, one with
    a broken config.json, one without SHA256SUMS, one whose README.md links out, a link to a run
    outside the folder, and one whose name breaks out of Markdown; catsdogs is a Hub repo only."""
    import huggingface_hub

    from ui.catalog import Catalog
    root = tmp_path_factory.mktemp("local-app")
    runs, cache, outside = root / "runs", root / "hub-cache", root / "outside"
    (outside / "secret.md").parent.mkdir()
    (outside / "secret.md").write_text(f"# {SECRET}\n")
    good = _copy_run(cifar10_run, runs / "cifar10" / "a-good")
    (_copy_run(good, runs / "cifar10" / "b-broken-config") / "config.json").write_text("{not json")
    _copy_run(good, runs / "cifar10" / "c-unverified", "SHA256SUMS")
    card = _copy_run(good, runs / "cifar10" / "d-linked-card") / "README.md"
    card.unlink()
    card.symlink_to(outside / "secret.md")
    (_copy_run(good, outside / "run") / "README.md").write_text(f"# {SECRET}\n")
    (runs / "cifar10" / "e-linked").symlink_to(outside / "run")
    _copy_run(good, runs / "cifar10" / "f`<img src=x onerror=alert(1)>`")
    snapshot = hub_repo(cache, "user/catsdogs", catsdogs_run)
    (snapshot / "README.md").unlink()                              # a link out of the Hub repo
    (snapshot / "README.md").symlink_to(outside / "secret.md")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        demo, url = launch_app(Catalog.from_sources(runs, ["user/catsdogs"]), training_off=None, hub_loading_off=None,
                               data_dir=root / "no-data")
        yield demo, url, runs, cache, outside
        demo.close()


def test_a_hub_revision_resolves_nothing_outside_the_cache(local_app, tmp_path):
    demo, url, _, cache, outside = local_app
    repo = cache / "models--user--catsdogs"
    # What an upload could hold: a file whose text leads from snapshots/ to a folder outside the cache.
    pointer = tmp_path / "pointer"
    pointer.write_text(os.path.relpath(outside / "run", repo / "snapshots"))
    for revision in (os.path.relpath(pointer, repo / "refs"), "/etc", "\\x", "main/../../x"):
        message = _refused(url, "load_hub_model", [f"user/catsdogs@{revision}"])
        assert message.startswith("repo_id:") and "is not a Hub repo id" in message, message
    # A refs/ file that names a folder outside the repo's snapshots (damaged or hostile) is refused too.
    hub_repo(cache, "user/tampered", outside / "run")
    tampered = cache / "models--user--tampered"
    (tampered / "refs" / "main").write_text(os.path.relpath(outside / "run", tampered / "snapshots"))
    message = _refused(url, "load_hub_model", ["user/tampered"])
    assert "outside the repo's snapshots; refused" in message, message
    assert not [e.key for e in demo.catalog.entries_ if e.kind == "hub" and e.key != "hub:user/catsdogs"]
    assert SECRET not in _call(url, "model_card", ["hub:user/tampered"])[1]
    # A 5,000-character repo id: one line.
    message = _refused(url, "load_hub_model", ["a/" + "b" * 5000])
    assert message.startswith("repo_id: 'a/bbbb") and "is not a Hub repo id" in message


def test_training_and_hub_loading_answer_only_requests_addressed_to_this_machine(local_app):
    from gradio_client import Client
    demo, url, *_ = local_app
    port = httpx.URL(url).port
    form = [p["parameter_default"] for p in Client(url, verbose=False).view_api(
        print_info=False, return_format="dict")["named_endpoints"]["/train_start"]["parameters"]]
    evil = f"rebind.evil.example:{port}"
    for headers in ({"Host": evil, "Origin": f"http://{evil}"}, {"Host": evil}, {"Origin": "http://evil.example"},
                    {"Origin": "null"}):
        for api, data in (("train_start", form), ("load_hub_model", ["user/catsdogs"])):
            message = _refused(url, api, data, headers=headers)
            assert "localhost only" in message or "refused a request from a page of" in message, (headers, message)
    page = httpx.get(url, headers={"Host": evil}, timeout=30)
    assert page.status_code == 403 and "localhost only" in page.json()["error"]
    assert demo.trainer.jobs.jobs == [], "a job was queued"
    # What the page itself sends (its own origin) and API clients (no Origin) still work.
    assert _call(url, "train_command", form, headers={"Origin": url.rstrip("/")})[0] == "complete"


def test_a_broken_run_is_listed_unavailable_with_why_and_one_without_digests_as_unverified(local_app, tmp_path):
    from gradio_client import Client
    _, url, *_ = local_app
    status = Client(url, verbose=False).predict(api_name="/reload_models")
    broken = next(line for line in status.splitlines() if "cifar10/b-broken-config" in line)
    assert "unavailable" in broken and "config.json: not valid JSON" in broken, broken
    message = _refused(url, "classify_cifar10", [{"url": _data_url(), "meta": META}, "cifar10/b-broken-config"])
    assert message.startswith("cifar10/b-broken-config is unavailable:") and "not valid JSON" in message, message
    unverified = next(line for line in status.splitlines() if "cifar10/c-unverified" in line)
    assert "unverified: no SHA256SUMS" in unverified, unverified
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=30).text
    assert "cifar10/c-unverified (baseline, unverified)" in config          # the dropdowns say so too
    assert "cifar10/a-good (baseline)" in config


def _data_url() -> str:
    import base64
    return "data:image/png;base64," + base64.b64encode(encode(photo(), "PNG")).decode()


def test_links_out_of_a_run_folder_or_hub_snapshot_are_refused(local_app):
    _, url, *_ = local_app
    for key in ("cifar10/d-linked-card", "cifar10/e-linked", "hub:user/catsdogs"):
        event, payload = _call(url, "model_card", [key])
        assert SECRET not in payload and _message(event, payload).startswith("model_run: no model card for"), payload
    message = _refused(url, "classify_cifar10", [{"url": _data_url(), "meta": META}, "cifar10/e-linked"])
    assert message == "unknown model 'cifar10/e-linked'; choose one from the list"


def test_a_hub_models_galleries_and_examples_work_from_the_hub_cache(local_app, catsdogs_run):
    from gradio_client import Client
    _, url, *_ = local_app
    gallery, table, note = Client(url, verbose=False, download_files=False).predict(
        "hub:user/catsdogs", api_name="/top_losses")
    shown = json.loads((catsdogs_run / "see_why" / "index.json").read_text())["images"]
    wrong = [row for row in shown if row["label"] != row["predicted"]]     # top losses: the wrong ones
    assert len(gallery) == len(wrong) > 0, note
    # The Cats vs Dogs tab's examples come from the Hub repo, captioned from examples/index.json.
    config = httpx.get(f"{url.rstrip('/')}/config", timeout=30).json()
    [examples] = [c["props"] for c in config["components"] if c["props"].get("elem_id") == "catsdogs-examples"]
    rows = json.loads((catsdogs_run / "examples" / "index.json").read_text())
    assert [item["caption"] for item in examples["value"]] == [f"{row['label']} #{row['index']}" for row in rows]


def test_a_run_folder_name_never_breaks_out_of_the_models_table(local_app):
    from gradio_client import Client
    from markdown_it import MarkdownIt
    _, url, *_ = local_app
    status = Client(url, verbose=False).predict(api_name="/reload_models")
    html = MarkdownIt("commonmark").enable("table").render(status)
    assert "f`<img src=x onerror=alert(1)>`" in status and "<img" not in html, html


def test_the_api_sees_a_run_finished_after_the_app_started(local_app, mnist_run):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    demo, url, runs, *_ = local_app
    client = Client(url, verbose=False, download_files=False)
    digit = handle_file(REPO / "assets" / "mnist_3.png")
    with pytest.raises(AppError, match="No MNIST model is available"):
        client.predict(digit, None, api_name="/classify_digit_image")
    _copy_run(mnist_run, runs / "mnist" / "live")          # as a finished training leaves it
    time.sleep(1.1)                                           # the runs folder is looked at once a second at most
    for key in ("mnist/live", None):
        label, bars = client.predict(digit, key, api_name="/classify_digit_image")
        assert label["label"] in {str(d) for d in range(10)} and len(bars["data"]) == 10
    assert demo.catalog.default_key("mnist") == "mnist/live"


# --- 5. uploads leave the cache; SIGTERM removes it -------------------------------------------------

def test_uploads_leave_the_cache_after_their_age(app_catalog, monkeypatch):
    import app
    monkeypatch.setattr(app, "CACHE_EXPIRY", (1, 1), raising=False)   # seconds: (how often, how old)
    demo, url = launch_app(app_catalog)
    try:
        stored = Path(_upload(url, encode(photo(seed=5), "PNG") + os.urandom(64)))
        assert stored.is_file()
        wait_until(lambda: not stored.exists(), "the upload deleted once older than its age", timeout=60)
    finally:
        demo.close()


def test_sigterm_removes_the_apps_cache_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(REPO))
    port = _free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--runs", str(tmp_path / "runs"), "--port", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Running on local URL" in line for line in lines) or process.poll() is not None,
                   "the app to start", timeout=300)
        [cache] = tmp_path.glob("cnn-studio-gradio-*")
        assert Path(_upload(f"http://127.0.0.1:{port}/", encode(photo(), "PNG"))).is_relative_to(cache)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, "".join(lines)[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert not cache.exists(), "the cache folder outlived the app"


# --- 7. one busy model endpoint leaves the others their share of the queue ----------------------------

def test_a_burst_on_one_model_leaves_the_others_their_share_of_the_queue(app_server, monkeypatch):
    from gradio_client import Client, handle_file

    from ui import classify_tab, serving
    demo, url = app_server
    gate = threading.Event()
    real_run_model = classify_tab.run_model

    def held(entry, img):       # every catdog call waits at the gate: the burst fills its whole share
        assert gate.wait(timeout=300), "the test never opened the gate"
        return real_run_model(entry, img)

    monkeypatch.setattr(classify_tab, "run_model", held)
    client = Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 300})
    cat, digit = handle_file(REPO / "assets" / "cat_drawing.png"), handle_file(REPO / "assets" / "mnist_3.png")
    queues = demo._queue.event_queue_per_concurrency_id
    queue = lambda: getattr(queues.get(serving.INFERENCE.id), "queue", [])  # noqa: E731
    try:
        burst = [client.submit(cat, api_name="/classify_catdog") for _ in range(32)]
        wait_until(lambda: sum(j.done() for j in burst) + len(queue()) >= 32 - serving.INFERENCE.limit,
                   "the burst queued or refused")
        digits = [client.submit(digit, None, api_name="/classify_digit_image") for _ in range(16)]
        wait_until(lambda: sum(e.fn.api_name == "classify_digit_image" for e in queue()) + sum(
            j.done() for j in digits) == 16, "the digit calls queued")
    finally:
        gate.set()
    refused = [j for j in burst if j.exception(timeout=300) is not None]
    assert refused and all("queue is full" in str(j.exception()).lower() for j in refused)
    for job in digits:
        label, bars = job.result(timeout=300)
        assert label["label"] in {str(d) for d in range(10)}


# --- 8. a deeply nested body: one line, no traceback --------------------------------------------------

def test_a_deeply_nested_body_is_refused_in_one_line_without_a_traceback(app_server, capfd):
    _, url = app_server
    for depth in (1000, 3000):
        body = '{"data": [' + "[" * depth + "]" * depth + "]}"
        for path in ("/gradio_api/call/model_card", "/gradio_api/run/model_card", "/gradio_api/queue/join"):
            response = httpx.post(f"{url.rstrip('/')}{path}", content=body, timeout=30,
                                  headers={"content-type": "application/json"})
            assert response.status_code == 400, (path, depth, response.status_code, response.text[:200])
            assert response.json()["error"] == ("request body nested deeper than 32 levels: "
                                                "no endpoint takes such a value")
    captured = capfd.readouterr()
    assert "RecursionError" not in captured.err + captured.out and "Traceback" not in captured.err + captured.out
