"""A safe app, tested through a launched server: the bad-input corpus of test_image_inputs.py
gets its one-line message and the server keeps answering; parallel calls give the sequential
answers; calls beyond the queue bound are refused cleanly; files outside the served folders,
server paths smuggled into a request, and oversized uploads are refused.

Uses the session's launched app (tests/conftest.py: app_server); for the queue bound, its queue
is made tiny for one test.
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
    label, bars = classify(client, good)
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
    label, bars = classify(client, upload)
    column = bars["columns"].index("probability")
    assert math.isclose(sum(row[column] for row in bars["data"]), 1.0, abs_tol=1e-4)
    assert label["label"] in {row[0] for row in bars["data"]}


def test_an_upload_over_the_size_limit_is_refused_and_the_server_keeps_answering(app_server, client, tmp_path):
    import app
    big = tmp_path / "big.png"
    big.write_bytes(encode(photo(), "PNG") + b"\0" * (11 * 1024 * 1024))   # trailing bytes after IEND
    with pytest.raises(Exception) as err:
        classify(client, big)
    assert "413" in str(err.value) or "too large" in str(err.value).lower() or "size" in str(err.value).lower()
    assert app.MAX_FILE_SIZE == 10 * 1024 * 1024
    assert_answers(client, tmp_path)


# --- concurrency ------------------------------------------------------------------------------

def test_parallel_calls_give_the_sequential_answers(client, tmp_path):
    from gradio_client import handle_file
    paths = []
    for seed in range(6):
        p = tmp_path / f"img{seed}.png"
        p.write_bytes(encode(photo(40 + seed, 30 + seed, seed=seed), "PNG"))
        paths.append(p)
    sequential = [classify(client, p) for p in paths]
    jobs = [client.submit(handle_file(p), api_name="/classify_cifar10") for p in paths * 2]
    parallel = [job.result(timeout=300) for job in jobs]
    for i, (label, bars) in enumerate(parallel):
        ref_label, ref_bars = sequential[i % len(paths)]
        assert label["label"] == ref_label["label"]
        # Concurrent calls share forward passes (ui/serving.py), which sum in another order than a
        # lone one: probabilities agree to ~1e-8, so the 6-decimal bars may differ in the last digit.
        assert len(bars["data"]) == len(ref_bars["data"])
        for row, ref_row in zip(bars["data"], ref_bars["data"]):
            assert row == pytest.approx(ref_row, abs=2e-6)


@pytest.fixture
def small_queue_server(app_server):
    """The session's app with room for two waiting events (enough to overflow from a test), then
    its own bound again. Gradio's queue reads its bound at every push."""
    demo, url = app_server
    bound = demo._queue.max_size
    demo._queue.max_size = 2
    yield demo, url
    demo._queue.max_size = bound


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
    assert all(o[1] == first[1] and o[3] == first[3] for o in answered), "answers differ under load"
    # After the burst, the server answers again.
    assert client.predict(handle_file(image), api_name="/classify_catdog")[1] == first[1]


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
    from gradio_client import handle_file
    seen = client.predict(handle_file(_write(tmp_path / "ok.png", encode(photo(), "PNG"))), api_name="/model_input_cifar10")
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


def test_a_broken_model_is_listed_unavailable_and_the_rest_keeps_serving(cifar10_run, tmp_path):
    """The newest CIFAR-10 run has truncated weights: it is reported (file and problem), the
    next one serves, and asking for the broken one by name is a one-line error."""
    import shutil

    import gradio as gr

    import app
    from ui import classify_tab
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
    # The file is named relative to the runs folder (issue 14 §7), never by its server path.
    assert bad.key.endswith("b-broken") and "runs/cifar10/b-broken/model.safetensors" in bad.error
    assert "not a valid safetensors" in bad.error and str(tmp_path) not in bad.error
    assert "unavailable" in catalog.status_markdown() and "\n" not in bad.error
    assert catalog.default_key("cifar10").endswith("a-good")
    image = _write(tmp_path / "x.png", encode(photo(), "PNG"))
    probs = classify_tab.classify(catalog, "cifar10", image.read_bytes()).answers[0].probs
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
    with pytest.raises(gr.Error) as err:
        classify_tab.classify(catalog, "cifar10", image.read_bytes(), [bad.key])
    assert "unavailable" in err.value.message and "\n" not in err.value.message
    assert str(tmp_path) not in err.value.message and str(tmp_path) not in catalog.status_markdown()


# --- one byte limit for every way an image arrives; a cap on every request body (issue 14 §3) ----

MIB = 1024 * 1024


def padded_png(total_bytes: int) -> bytes:
    """A valid PNG of exactly `total_bytes` (zero bytes after IEND, which decoders ignore)."""
    png = encode(photo(), "PNG")
    return png + b"\0" * (total_bytes - len(png))


def data_url_payload(data: bytes) -> dict:
    import base64
    return {"url": "data:image/png;base64," + base64.b64encode(data).decode(), "meta": {"_type": "gradio.FileData"}}


def test_the_limits_are_one_number_and_the_body_cap_fits_an_image_at_that_number():
    import app
    from ui.common import MAX_IMAGE_BYTES
    assert MAX_IMAGE_BYTES == 10 * MIB and app.MAX_FILE_SIZE == MAX_IMAGE_BYTES
    # The largest legitimate body: an image at the limit as base64 (4/3) in JSON.
    assert MAX_IMAGE_BYTES * 4 / 3 + 64 * 1024 < app.MAX_REQUEST_BYTES < 4 * MAX_IMAGE_BYTES


@pytest.mark.parametrize("form", ["path", "bytes", "upload payload", "data URL", "data URL payload"])
def test_read_image_refuses_an_image_over_the_limit_in_every_form_before_decoding(tmp_path, monkeypatch, form):
    import base64

    import gradio as gr

    from gradio.utils import get_upload_folder

    from ui import common
    big = padded_png(common.MAX_IMAGE_BYTES + 1)
    Path(get_upload_folder()).mkdir(parents=True, exist_ok=True)
    path = _write(Path(get_upload_folder()) / f"big-{form}.png", big)      # an upload: the only files it opens
    url = "data:image/png;base64," + base64.b64encode(big).decode()
    value = {"path": str(path), "bytes": big, "upload payload": {"path": str(path)}, "data URL": url,
             "data URL payload": {"url": url}}[form]
    work = []
    monkeypatch.setattr(common, "decode_image", lambda *a, **k: work.append("decode"))
    monkeypatch.setattr(common.base64, "b64decode", lambda *a, **k: work.append("b64decode"))
    with pytest.raises(gr.Error, match=r"the image is too large \(10\.0 MiB; at most 10 MiB\)"):
        common.read_image(value)
    path.unlink()
    assert work == [], "bytes were decoded before the size was checked"


def test_a_data_url_over_the_image_limit_is_refused_before_it_is_decoded(app_server, client, tmp_path, monkeypatch):
    from ui import common
    _, url = app_server
    decoded = []
    real = common.base64.b64decode
    monkeypatch.setattr(common.base64, "b64decode", lambda s, *a, **k: decoded.append(len(s)) or real(s, *a, **k))
    # Just over the image limit: the body is within the cap, the image limit refuses it.
    event, payload = _call_api(url, "classify_digit_image", [data_url_payload(padded_png(11 * MIB)), None])
    assert event == "error" and "the image is too large (11.0 MiB; at most 10 MiB)" in payload, payload
    assert all(n * 3 // 4 <= common.MAX_IMAGE_BYTES for n in decoded), decoded
    # The 30 MB data URL (40 MB of JSON): refused by the body cap, never read whole.
    event, payload = _call_api(url, "classify_digit_image", [data_url_payload(padded_png(30 * MIB)), None])
    assert event == "http" and payload.startswith("413") and "request body too large" in payload, payload[:200]
    # Under the limit the same form is classified.
    label, bars = _json_call(url, "classify_cifar10", [data_url_payload(padded_png(9 * MIB)), None])
    assert label["label"] in {row[0] for row in bars["data"]}
    assert_answers(client, tmp_path)


def _json_call(url: str, api_name: str, data: list):
    """The outputs of a call over plain HTTP, as view_api lists them: Gradio sends a null for each
    output that is the page's own State (never in the API), after the others."""
    event, payload = _call_api(url, api_name, data)
    assert event == "complete", (event, payload[:300])
    outputs = json.loads(payload)
    named = len(httpx.get(f"{url.rstrip('/')}/gradio_api/info", timeout=30).json()["named_endpoints"][f"/{api_name}"]
                ["returns"])
    assert all(value is None for value in outputs[named:]), outputs[named:]
    return outputs[:named]


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port


def _read_http_response(sock) -> tuple[str, str]:
    """(status line, body) of a response on a raw socket."""
    sock.setblocking(True)
    sock.settimeout(120)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        while lengths and len(body) < lengths[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except ConnectionResetError:
        head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body.decode(errors="replace")


def declared_body_answer(url: str, declared_bytes: int, path: str = "/gradio_api/call/classify_cifar10"):
    """(status code, body) of a POST that declares `declared_bytes` and sends only its first 40."""
    import socket
    host, port = _host_port(url)
    with socket.create_connection((host, port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {declared_bytes}\r\n\r\n".encode()
                     + b'{"data": [{"url": "data:image/png;base64,')
        status, body = _read_http_response(sock)
    return int(status.split()[1]), body


def test_a_declared_200_mb_body_is_refused_before_it_is_read(app_server, client, tmp_path):
    status, body = declared_body_answer(app_server[1], 200 * MIB)
    assert status == 413, status
    assert "request body too large (200.0 MiB; at most 16 MiB)" in json.loads(body)["error"]
    assert_answers(client, tmp_path)


@pytest.mark.parametrize("path", ["/gradio_api/call/classify_cifar10", "/gradio_api/run/classify_cifar10",
                                  "/gradio_api/queue/join"])
def test_a_streamed_200_mb_body_is_cut_off_near_the_cap(app_server, client, tmp_path, path):
    """Chunked, so no length is declared: the server counts what arrives and answers 413 as
    soon as the cap is passed, while the client is still sending (it never takes 200 MiB)."""
    import select
    import socket

    import app
    _, url = app_server
    host, port = _host_port(url)
    frame = f"{MIB:x}\r\n".encode() + b"A" * MIB + b"\r\n"
    sent, pending = 0, b""
    with socket.create_connection((host, port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sock.setblocking(False)
        while sent < 200 * MIB:
            readable, writable, _ = select.select([sock], [sock], [], 120)
            if readable:
                break                                  # the server answered
            assert writable, "the server neither read more nor answered"
            pending = pending or frame
            try:
                count = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending, sent = pending[count:], sent + count
        status, body = _read_http_response(sock)
    assert status.split()[1] == "413", (status, body[:200])
    assert "request body too large (more than 16 MiB)" in body
    # What the client got out before the answer: the cap plus what the sockets buffer, far from 200 MiB.
    assert app.MAX_REQUEST_BYTES < sent < app.MAX_REQUEST_BYTES + 48 * MIB, sent
    assert_answers(client, tmp_path)


# --- every endpoint checks every input and says what it allows (issue 14 §5) --------------------
# The endpoint list comes from the live server's API info, so a new endpoint is covered too.

CLICK_MESSAGE = "answers a click in the page"
WRONG_TYPE = {"wrong": "type"}
BAD_NUMBERS = [2**70, -10**9, "abc", "NaN"]


@pytest.fixture(scope="module")
def endpoints(client):
    return client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def valid_inputs(app_server, endpoints, tmp_path_factory):
    """A valid value for every parameter of every endpoint: an uploaded image (a digit for the
    MNIST endpoints), else the parameter's default (the component's initial value)."""
    _, url = app_server
    folder = tmp_path_factory.mktemp("valid-inputs")
    photo_upload = _uploaded(url, _write(folder / "photo.png", encode(photo(64, 48), "PNG")))
    digit_upload = _uploaded(url, REPO / "assets" / "mnist_3.png")
    out = {}
    for name, info in endpoints.items():
        values = []
        for p in info["parameters"]:
            upload = digit_upload if ("digit" in name or "mnist" in name) else photo_upload
            if p["component"] == "Image":
                values.append(upload)
            elif p["component"] in ("Sketchpad", "Imageeditor"):
                values.append({"background": None, "layers": [], "composite": upload})
            elif p["parameter_name"] == "box_size" and name == "/occlusion_sweep":
                values.append(224)                       # one box position: a fast sweep
            else:
                values.append(p["parameter_default"])
        out[name] = values
    return out


def _uploaded(url: str, path: Path) -> dict:
    response = httpx.post(f"{url.rstrip('/')}/gradio_api/upload",
                          files={"files": (path.name, path.read_bytes(), "image/png")}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


def _message(event: str, payload: str) -> str | None:
    """The error text of a refused call (None when the call succeeded)."""
    if event == "complete":
        return None
    if event == "http":
        status, _, body = payload.partition(" ")
        try:
            return json.loads(body).get("error") or json.loads(body).get("detail")
        except ValueError:
            return body
    return (json.loads(payload) or {}).get("error") or ""


def _assert_names(message, parameter: str, endpoint: str, sent) -> None:
    where = f"{endpoint} {parameter}={sent!r}"
    assert message is not None, f"{where}: accepted"
    assert message, f"{where}: refused with no message ({{'error': null}})"
    assert "\n" not in message and "Traceback" not in message and len(message) < 600, (where, message)
    assert parameter in message or CLICK_MESSAGE in message or (
        parameter == "image" and message.startswith("Could not read the image")), (where, message)


def _with(values: list, index: int, value) -> list:
    changed = list(values)
    changed[index] = value
    return changed


def test_every_parameter_of_every_endpoint_refuses_a_wrong_type_by_name(app_server, endpoints, valid_inputs):
    _, url = app_server
    for name, info in endpoints.items():
        for i, p in enumerate(info["parameters"]):
            event, payload = _call_api(url, name.lstrip("/"), _with(valid_inputs[name], i, WRONG_TYPE))
            _assert_names(_message(event, payload), p["parameter_name"], name, WRONG_TYPE)


def test_every_number_of_every_endpoint_refuses_out_of_range_values_by_name(app_server, endpoints, valid_inputs):
    """Each kind of bad number (too large, too small, text, NaN) once per endpoint, and each number
    parameter at least once: the kinds go round the endpoint's number parameters."""
    _, url = app_server
    numeric = {name: [(i, p) for i, p in enumerate(info["parameters"]) if p["python_type"]["type"] in ("float", "int")]
               for name, info in endpoints.items()}
    assert {p["parameter_name"] for params in numeric.values() for _, p in params} >= {
        "seed", "copies", "box_x", "box_size", "decision_threshold", "overlay_strength"}
    for name, params in ((n, ps) for n, ps in numeric.items() if ps):
        for k in range(max(len(BAD_NUMBERS), len(params))):
            (i, p), bad = params[k % len(params)], BAD_NUMBERS[k % len(BAD_NUMBERS)]
            event, payload = _call_api(url, name.lstrip("/"), _with(valid_inputs[name], i, bad))
            message = _message(event, payload)
            _assert_names(message, p["parameter_name"], name, bad)
            assert CLICK_MESSAGE in message or "from" in message, message      # says the allowed range


def test_a_missing_value_is_named_or_means_the_documented_default(app_server, endpoints, valid_inputs):
    """None for each required parameter (no default in the API info, e.g. the image): refused by
    name. None where there is a default (a model run: the tab's default model) may be served, a
    whole call's work: once per endpoint, for its first such parameter."""
    _, url = app_server
    for name, info in endpoints.items():
        defaulted = [i for i, p in enumerate(info["parameters"]) if p["parameter_has_default"]]
        for i, p in enumerate(info["parameters"]):
            if p["parameter_has_default"] and i != defaulted[0]:
                continue
            event, payload = _call_api(url, name.lstrip("/"), _with(valid_inputs[name], i, None))
            message = _message(event, payload)
            if message is None:
                assert p["parameter_has_default"], f"{name}: required {p['parameter_name']} accepted None"
                continue
            if p["parameter_has_default"]:       # None is the default: any refusal is for another reason
                assert message and "\n" not in message, (name, p["parameter_name"], message)
                continue
            _assert_names(message, p["parameter_name"], name, None)


def test_a_wrong_number_of_inputs_is_answered_with_the_parameters(app_server, endpoints, valid_inputs):
    _, url = app_server
    for name, info in endpoints.items():
        names = [p["parameter_name"] for p in info["parameters"]]
        for data in ([valid_inputs[name][:-1]] if names else []) + [valid_inputs[name] + [None]]:
            event, payload = _call_api(url, name.lstrip("/"), data)
            message = _message(event, payload)
            assert event == "http" and payload.startswith("422"), (name, event, payload[:200])
            assert CLICK_MESSAGE in message or f"({', '.join(names) or 'none'})" in message, message


def test_the_browser_page_still_works_through_the_queue_with_a_short_call_refused(app_server, client, tmp_path):
    """gradio_client (like the page) calls through /queue/join: valid calls pass the checks;
    a call with fewer inputs than the endpoint takes is refused with the parameter list."""
    _, url = app_server
    assert_answers(client, tmp_path)
    fn_index = next(i for i, fn in app_server[0].fns.items() if fn.api_name == "classify_cifar10")
    response = httpx.post(f"{url.rstrip('/')}/gradio_api/queue/join", timeout=30,
                          json={"data": [], "fn_index": fn_index, "session_hash": "abc123"})
    assert response.status_code == 422 and "(image, model_run)" in response.json()["error"]


@pytest.mark.parametrize("name, image", [
    ("fully transparent", lambda: encode(Image.new("RGBA", (28, 28), (0, 0, 0, 0)), "PNG")),
    ("uniform gray", lambda: encode(Image.new("L", (28, 28), 128), "PNG")),
    ("one pixel", lambda: encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")),
    ("uniform animated GIF", lambda: encode(Image.new("RGB", (16, 16), (200, 200, 200)), "GIF", save_all=True,
                                            append_images=[Image.new("RGB", (16, 16), (200, 200, 200))] * 2)),
])
def test_a_blank_digit_is_answered_with_why_not(app_server, app_catalog, tmp_path, name, image):
    """/classify_digit_image and /classify_digit either classify or say why not."""
    if app_catalog.default_key("mnist") is None:
        pytest.skip("no MNIST run (real MNIST not found)")
    _, url = app_server
    upload = _uploaded(url, _write(tmp_path / "blank.png", image()))
    for api, value in (("classify_digit_image", upload),
                       ("classify_digit", {"background": None, "layers": [], "composite": upload})):
        event, payload = _call_api(url, api, [value, None])
        message = _message(event, payload)
        assert message and "no digit found" in message and "\n" not in message, (api, event, payload)


def test_long_thin_images_are_classified_by_the_server(app_server, tmp_path):
    _, url = app_server
    strip = np.random.default_rng(1).integers(0, 256, (8, 4000, 3), dtype=np.uint8)
    upload = _uploaded(url, _write(tmp_path / "strip.png", encode(Image.fromarray(strip), "PNG")))
    label, bars = _json_call(url, "classify_cifar10", [upload, None])
    column = bars["columns"].index("probability")
    assert math.isclose(sum(row[column] for row in bars["data"]), 1.0, abs_tol=1e-4)


# --- no server paths to clients; a cache folder of the app's own (issue 14 §7) ---------------------

def test_config_and_messages_carry_no_server_paths(app_server, app_runs):
    _, url = app_server
    config = _get(url, "/config").text
    for path in {str(app_runs), str(app_runs.resolve()), str(REPO), str(Path.home())}:
        assert path not in config, path
    event, payload = _call_api(url, "model_card", ["hub:cnn-studio-tests/not-on-this-machine"])
    assert str(Path.home()) not in payload and str(app_runs) not in payload


def test_the_app_has_a_private_cache_folder_of_its_own(app_server, tmp_path, monkeypatch):
    import os
    import stat
    import tempfile

    import app
    _, url = app_server
    folder = Path(os.environ[app.CACHE_ENV])
    assert folder.is_dir() and folder.resolve() != (Path(tempfile.gettempdir()) / "gradio").resolve()
    # Uploads land there, and a file another Gradio app left in the shared default folder is not served.
    assert _an_upload_path(url, tmp_path).resolve().is_relative_to(folder.resolve())
    other = Path(tempfile.gettempdir()) / "gradio" / "cnn-studio-test-other-app"
    other.mkdir(parents=True, exist_ok=True)
    (other / "secret.png").write_bytes(encode(photo(), "PNG"))
    assert _get(url, f"/gradio_api/file={other / 'secret.png'}").status_code in (403, 404)
    # A fresh folder is created private (0700); a folder named in GRADIO_TEMP_DIR is created 0700 too.
    monkeypatch.delenv(app.CACHE_ENV)
    fresh = app.private_cache_dir()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700 and os.environ[app.CACHE_ENV] == str(fresh)
    named = tmp_path / "named-cache"
    monkeypatch.setenv(app.CACHE_ENV, str(named))
    assert app.private_cache_dir() == named and stat.S_IMODE(named.stat().st_mode) == 0o700
