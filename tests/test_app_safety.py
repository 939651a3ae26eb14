"""A safe app, tested through a launched server: the bad-input corpus of test_image_inputs.py
gets its one-line message and the server keeps answering; parallel calls give the sequential
answers; calls beyond the queue bound are refused cleanly; files outside the served folders,
server paths smuggled into a request, and oversized uploads are refused.

Uses the session's launched app (tests/conftest.py: app_server) and, for the queue bound, a
second server from the same catalog with a tiny queue.
"""
from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import launch_app
from tests.test_image_inputs import (BAD, animated_gif, encode, exif_rotated_jpeg, photo,
                                     transparent)

REPO = Path(__file__).resolve().parents[1]
# As in production (models/predict.py sets it at import; pytest resets warning filters per test).
pytestmark = pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
GOOD = {
    "RGB PNG": lambda: encode(photo(), "PNG"),
    "JPEG": lambda: encode(photo(), "JPEG"),
    "WEBP": lambda: encode(photo(), "WEBP"),
    "BMP": lambda: encode(photo(), "BMP"),
    "RGBA": lambda: encode(transparent("RGBA"), "PNG"),
    "LA": lambda: encode(transparent("LA"), "PNG"),
    "P with transparency": lambda: encode(transparent("P"), "PNG"),
    "CMYK JPEG": lambda: encode(photo().convert("CMYK"), "JPEG"),
    "16-bit": lambda: encode(Image.fromarray(np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)), "PNG"),
    "1-bit": lambda: encode(photo().convert("1"), "PNG"),
    "EXIF rotated JPEG": lambda: exif_rotated_jpeg(6),
    "animated GIF": animated_gif,
    "1x1": lambda: encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
}


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client
    return Client(app_server[1], verbose=False, download_files=False)


def classify(client, path: Path):
    from gradio_client import handle_file
    return client.predict(handle_file(path), api_name="/classify_cifar10")


def assert_answers(client, tmp_path: Path) -> None:
    """The server still classifies a good image."""
    good = tmp_path / "good.png"
    good.write_bytes(encode(photo(seed=7), "PNG"))
    label, bars, _ = classify(client, good)
    column = bars["columns"].index("probability")
    assert math.isclose(sum(row[column] for row in bars["data"]), 1.0, abs_tol=1e-4)


# --- the bad-input corpus through the server ---------------------------------------------------

@pytest.mark.parametrize("name", list(BAD))
def test_bad_upload_gets_its_message_and_the_server_keeps_answering(client, tmp_path, name):
    from gradio_client.exceptions import AppError
    data, expected = BAD[name]
    upload = tmp_path / "upload.png"
    upload.write_bytes(data)
    with pytest.raises(AppError) as err:
        classify(client, upload)
    message = str(err.value).strip()
    assert message.startswith("Could not read the image") and expected in message, message
    assert "\n" not in message and "Traceback" not in message
    assert_answers(client, tmp_path)


@pytest.mark.parametrize("name", list(GOOD))
def test_every_mode_is_classified(client, tmp_path, name):
    upload = tmp_path / "upload.png"
    upload.write_bytes(GOOD[name]())
    label, bars, seen = classify(client, upload)
    column = bars["columns"].index("probability")
    assert math.isclose(sum(row[column] for row in bars["data"]), 1.0, abs_tol=1e-4)
    assert label["label"] in {row[0] for row in bars["data"]} and seen


def test_an_upload_over_the_size_limit_is_refused_and_the_server_keeps_answering(app_server, client, tmp_path):
    import app
    big = tmp_path / "big.png"
    big.write_bytes(encode(photo(), "PNG") + b"\0" * (11 * 1024 * 1024))   # trailing bytes after IEND
    with pytest.raises(Exception) as err:
        classify(client, big)
    assert "413" in str(err.value) or "too large" in str(err.value).lower() or "size" in str(err.value).lower()
    assert app.MAX_FILE_SIZE == "10mb"
    assert_answers(client, tmp_path)


# --- concurrency ------------------------------------------------------------------------------

def test_parallel_calls_give_the_sequential_answers(client, tmp_path):
    from gradio_client import handle_file
    paths = []
    for seed in range(6):
        p = tmp_path / f"img{seed}.png"
        p.write_bytes(encode(photo(40 + seed, 30 + seed, seed=seed), "PNG"))
        paths.append(p)
    sequential = [classify(client, p)[:2] for p in paths]
    jobs = [client.submit(handle_file(p), api_name="/classify_cifar10") for p in paths * 2]
    parallel = [job.result(timeout=300)[:2] for job in jobs]
    for i, (label, bars) in enumerate(parallel):
        ref_label, ref_bars = sequential[i % len(paths)]
        assert label["label"] == ref_label["label"]
        # Concurrent calls share forward passes (ui/serving.py), which sum in another order than a
        # lone one: probabilities agree to ~1e-8, so the 6-decimal bars may differ in the last digit.
        assert len(bars["data"]) == len(ref_bars["data"])
        for row, ref_row in zip(bars["data"], ref_bars["data"]):
            assert row == pytest.approx(ref_row, abs=2e-6)


@pytest.fixture(scope="module")
def small_queue_server(app_catalog):
    """The same app with room for two waiting events: enough to overflow from a test."""
    demo, url = launch_app(app_catalog, queue_max_size=2)
    yield demo, url
    demo.close()


def test_calls_beyond_the_queue_bound_are_refused_cleanly(small_queue_server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError
    _, url = small_queue_server
    client = Client(url, verbose=False, download_files=False)
    image = tmp_path / "cat.png"
    image.write_bytes(encode(photo(160, 120, seed=3), "PNG"))
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(
            lambda _: _outcome(lambda: client.predict(handle_file(image), api_name="/classify_catdog")),
            range(16)))
    refused = [o for o in outcomes if isinstance(o, Exception)]
    answered = [o for o in outcomes if not isinstance(o, Exception)]
    assert refused, "the queue never filled"
    for e in refused:
        assert isinstance(e, (QueueError, AppError)) and "queue is full" in str(e).lower(), repr(e)
    assert answered, "nothing was served"
    first = answered[0]
    assert all(o[0] == first[0] and o[1] == first[1] for o in answered), "answers differ under load"
    # After the burst, the server answers again.
    assert client.predict(handle_file(image), api_name="/classify_catdog")[0] == first[0]


def _outcome(call):
    try:
        return call()
    except Exception as e:  # noqa: BLE001 - the test inspects what came back
        return e


# --- files and paths ----------------------------------------------------------------------------

def _get(url: str, path: str) -> httpx.Response:
    return httpx.get(f"{url.rstrip('/')}{path}", timeout=30, follow_redirects=False)


def test_files_outside_the_served_folders_are_refused(app_server, app_runs, client, tmp_path):
    _, url = app_server
    secret = tmp_path / "secret.txt"
    secret.write_text("secret-token-123")
    checkpoint = next(app_runs.rglob("checkpoint.pt"))
    config = next(app_runs.rglob("config.json"))
    targets = [
        "/etc/passwd", "/proc/self/environ", str(secret), str(checkpoint), str(config),
        str(REPO / "app.py"), "app.py", "tests/conftest.py",
        "../../../../../../etc/passwd", "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "....//....//....//etc/passwd", "%2Fetc%2Fpasswd", "//etc/passwd", "file:///etc/passwd",
        "http://127.0.0.1:1/secret", "http://169.254.169.254/latest/meta-data/", "http://localhost/",
    ]
    for prefix in ("/gradio_api/file=", "/file="):
        for target in targets:
            response = _get(url, prefix + target)
            assert response.status_code in (400, 403, 404, 405), (prefix, target, response.status_code)
            body = response.text
            assert "root:" not in body and "secret-token" not in body and "config_hash" not in body
    # Traversal out of the upload folder through a "file=" path that starts inside it.
    upload_dir = _an_upload_path(url, tmp_path).parent
    for target in (f"{upload_dir}/../../../../etc/passwd", f"{upload_dir}/%2e%2e/%2e%2e/%2e%2e/etc/passwd"):
        response = _get(url, "/gradio_api/file=" + target)
        assert response.status_code in (400, 403, 404), (target, response.status_code)
        assert "root:" not in response.text
    # Positive control: the route does serve what the app itself produced.
    _, _, seen = classify(client, _write(tmp_path / "ok.png", encode(photo(), "PNG")))
    served = _get(url, "/gradio_api/file=" + seen["path"])
    assert served.status_code == 200 and served.content[:8] == b"\x89PNG\r\n\x1a\n"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _an_upload_path(url: str, tmp_path: Path) -> Path:
    response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload",
                          files={"files": ("x.png", encode(photo(), "PNG"), "image/png")}, timeout=30)
    response.raise_for_status()
    return Path(response.json()[0])


def test_an_upload_cannot_choose_where_it_lands(app_server, tmp_path):
    _, url = app_server
    escape = tmp_path / "escaped.png"
    for name in (f"../../../../../../{escape}", str(escape), "..\\..\\escaped.png", "../"):
        response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload",
                              files={"files": (name, encode(photo(), "PNG"), "image/png")}, timeout=30)
        if response.status_code == 200:
            stored = Path(response.json()[0]).resolve()
            assert stored.is_file() and escape.resolve() != stored
            assert ".." not in Path(response.json()[0]).parts
    assert not escape.exists()


def _call_api(url: str, api_name: str, data: list) -> tuple[str, str]:
    """The plain HTTP API (what any script can send, bypassing gradio_client's own uploads):
    returns the final SSE event name and its data."""
    base = url.rstrip("/")
    response = httpx.post(f"{base}/gradio_api/call/{api_name}", json={"data": data}, timeout=30)
    if response.status_code != 200:
        return "http", f"{response.status_code} {response.text}"
    event_id = response.json()["event_id"]
    event, payload = "", ""
    with httpx.stream("GET", f"{base}/gradio_api/call/{api_name}/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    return event, payload


def test_server_paths_in_a_request_are_refused(app_server, tmp_path):
    """A FileData payload naming a file on the server (not an upload) never reaches the handler."""
    _, url = app_server
    secret = tmp_path / "private.png"
    secret.write_bytes(encode(photo(), "PNG"))          # a real image: reading it would succeed
    answers = {}
    for path in (str(secret), "/etc/passwd", str(tmp_path / "missing.png")):
        event, payload = _call_api(url, "classify_cifar10",
                                   [{"path": path, "meta": {"_type": "gradio.FileData"}}, None])
        assert event in ("error", "http"), (path, event, payload)
        assert "root:" not in payload and "probability" not in payload
        answers[path] = payload
    # The same refusal whether the file exists or not: no oracle for what is on the server.
    assert answers[str(secret)].replace(str(secret), "X") == answers["/etc/passwd"].replace("/etc/passwd", "X")


def test_urls_in_a_request_are_not_fetched(app_server):
    _, url = app_server
    for bad in ({"path": "http://169.254.169.254/latest/meta-data/x.png", "meta": {"_type": "gradio.FileData"}},
                {"url": "http://127.0.0.1:1/x.png", "path": None, "meta": {"_type": "gradio.FileData"}},
                "http://127.0.0.1:1/x.png", "/etc/passwd"):
        event, payload = _call_api(url, "classify_cifar10", [bad, None])
        assert event in ("error", "http"), (bad, event, payload)
        assert "probability" not in payload


def test_run_and_model_names_are_not_paths(client, tmp_path):
    from gradio_client.exceptions import AppError
    image = _write(tmp_path / "x.png", encode(photo(), "PNG"))
    from gradio_client import handle_file
    for name in ("../../etc", "/etc/passwd", "cifar10/../../../etc", "..\\..\\x"):
        with pytest.raises(AppError):
            client.predict(handle_file(image), name, api_name="/classify_cifar10")
    with pytest.raises(AppError):
        client.predict("/etc/passwd", api_name="/model_card")


def test_no_public_link_and_limits_on_launch(app_server):
    import app
    demo, _ = app_server
    options = app.launch_options()
    assert options.get("share", False) is False and demo.share is False
    assert demo.max_file_size == 10 * 1024 * 1024
    assert demo._queue.max_size == app.QUEUE_MAX_SIZE
    json.dumps(options, default=str)   # plain values only


def test_a_broken_model_is_listed_unavailable_and_the_rest_keeps_serving(cifar10_run, tmp_path):
    """The newest CIFAR-10 run has truncated weights: it is reported (file and problem), the
    next one serves, and asking for the broken one by name is a one-line error."""
    import shutil

    import gradio as gr

    import app
    from ui import cifar10_tab
    runs = tmp_path / "runs" / "cifar10"
    good, broken = runs / "a-good", runs / "b-broken"
    shutil.copytree(cifar10_run, good, ignore=shutil.ignore_patterns("checkpoint.pt", "tb"))
    shutil.copytree(good, broken, ignore=shutil.ignore_patterns("SHA256SUMS"))   # unverified: the parse must refuse it
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    config = json.loads((broken / "config.json").read_text())
    config["created"] = "2999-01-01T00:00:00+00:00"          # the newest: tried first
    (broken / "config.json").write_text(json.dumps(config))
    demo = app.build_demo(tmp_path / "runs")
    catalog = demo.catalog
    [bad] = catalog.unavailable()
    assert bad.key.endswith("b-broken") and str(weights) in bad.error and "not a valid safetensors" in bad.error
    assert "unavailable" in catalog.status_markdown() and "\n" not in bad.error
    assert catalog.default_key("cifar10").endswith("a-good")
    image = _write(tmp_path / "x.png", encode(photo(), "PNG"))
    probs, _, _ = cifar10_tab.classify_cifar10(catalog, str(image))
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
    with pytest.raises(gr.Error) as err:
        cifar10_tab.classify_cifar10(catalog, str(image), bad.key)
    assert "unavailable" in err.value.message and "\n" not in err.value.message
