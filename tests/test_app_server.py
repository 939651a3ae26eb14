"""The launched app driven through gradio_client: every api_name answers, probabilities sum to 1,
bad uploads get a one-line message and the server keeps serving. One server for the module
(tests/conftest.py: app_server), on a free local port.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

import app
from ui.catalog import TRAIN_COMMANDS

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_APIS = {"classify_cifar10", "classify_digit", "classify_digit_image", "classify_catdog"}
OTHER_APIS = {"augment", "architecture", "curves", "model_card"}
EXAMPLE_LOADERS = {"cifar10_example", "digit_example", "catdog_example"}
# The "See why" tab and the Grad-CAM panels of the classify tabs (tested in test_explain_tab.py).
EXPLAIN_APIS = {"gradcam", "gradcam_targets", "confusion", "confusion_cell", "occlusion_probe", "occlusion_click",
                "occlusion_sweep", "threshold", "calibration", "top_losses", "erasing_study",
                "gradcam_cifar10", "gradcam_mnist", "gradcam_catsdogs", "gradcam_catsdogs_re"}


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client
    return Client(app_server[1], verbose=False, download_files=False)


def bar_total(plot: dict) -> float:
    column = plot["columns"].index("probability")
    return sum(row[column] for row in plot["data"])


def label_total(label: dict) -> float:
    return sum(c["confidence"] for c in label["confidences"])


def test_every_event_has_its_own_api_name(app_server):
    demo, _ = app_server
    names = [fn.api_name for fn in demo.fns.values()]
    assert None not in names and len(names) == len(set(names))
    # Private events only keep the page in step (clear a stale Grad-CAM, remember the last image).
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility != "private"}
    assert public == MODEL_APIS | OTHER_APIS | EXAMPLE_LOADERS | EXPLAIN_APIS


def test_the_api_page_lists_every_endpoint(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {f"/{name}" for name in MODEL_APIS | OTHER_APIS | EXPLAIN_APIS} <= endpoints


def test_classify_cifar10(client):
    from gradio_client import handle_file
    label, bars, seen = client.predict(handle_file(ASSETS / "sample_boat.png"), api_name="/classify_cifar10")
    assert label["label"] in {row[0] for row in bars["data"]}
    assert len(bars["data"]) == 10 and math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)
    assert seen  # the 32x32 model input, as an image


def test_classify_digit_from_a_sketch_and_from_an_upload(client, app_catalog):
    from gradio_client import handle_file
    if app_catalog.default_key("mnist") is None:
        pytest.skip("no MNIST run (real MNIST not found)")
    digit = handle_file(ASSETS / "mnist_3.png")
    seen, label, bars = client.predict({"background": None, "layers": [], "composite": digit},
                                       api_name="/classify_digit")
    assert seen and label["label"] in [str(d) for d in range(10)]
    assert len(bars["data"]) == 10 and math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)
    seen, label, bars = client.predict(digit, api_name="/classify_digit_image")
    assert math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)


def test_classify_catdog_gives_both_models(client):
    from gradio_client import handle_file
    base, erasing, seen, summary = client.predict(handle_file(ASSETS / "cat_drawing.png"),
                                                  api_name="/classify_catdog")
    for label in (base, erasing):
        assert {c["label"] for c in label["confidences"]} == {"cat", "dog"}
        assert math.isclose(label_total(label), 1.0, abs_tol=1e-6)
    assert "Baseline" in summary and "Random Erasing" in summary


def test_the_other_endpoints_answer(client):
    gallery, text = client.predict("Cats vs Dogs + Random Erasing", "cat drawing", None, 1, 3, api_name="/augment")
    assert len(gallery) == 4 and "Random Erasing" in text
    table, text = client.predict("Cats vs Dogs: resnet50_binary", 1, api_name="/architecture")
    assert "23,510,081" in text and table["headers"] == ["layer", "output shape", "parameters", "mult-adds"]
    accuracy, loss = client.predict(["cifar10/tiny"], api_name="/curves")
    assert {row[2] for row in accuracy["data"]} == {"cifar10/tiny train", "cifar10/tiny val"}
    card, curves = client.predict("cifar10/tiny", api_name="/model_card")
    assert "CIFAR-10" in card and not card.startswith("---") and curves


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"garbage" * 50])
def test_a_bad_upload_gets_a_one_line_message_and_the_server_keeps_serving(client, tmp_path, content):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    bad = tmp_path / "upload.png"
    bad.write_bytes(content)
    with pytest.raises(AppError) as err:
        client.predict(handle_file(bad), api_name="/classify_cifar10")
    message = str(err.value)
    assert "Could not read the image" in message and "\n" not in message.strip() and "Traceback" not in message
    label, bars, _ = client.predict(handle_file(ASSETS / "sample_boat.png"), api_name="/classify_cifar10")
    assert math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)


def test_runs_and_samples_are_names_not_paths(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match="unknown model"):
        client.predict(handle_file(ASSETS / "sample_boat.png"), "../../etc", api_name="/classify_cifar10")
    with pytest.raises(AppError):
        client.predict("MNIST", "/etc/passwd", None, 0, 2, api_name="/augment")


def test_files_outside_the_served_folders_are_refused(app_server):
    import httpx
    _, url = app_server
    for path in ("/etc/passwd", "../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", str(ASSETS.parent / "scripts" / "make_assets.py")):
        response = httpx.get(f"{url.rstrip('/')}/gradio_api/file={path}", timeout=10)
        assert response.status_code in (403, 404), path


def test_limits_are_set(app_server):
    demo, _ = app_server
    options = app.launch_options()
    assert "share" not in options
    assert demo.share is False
    assert demo.max_file_size == 10 * 1024 * 1024
    assert demo._queue.max_size == app.QUEUE_MAX_SIZE
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values() if fn.api_name in MODEL_APIS}
    assert set(limits.values()) == {1}


def test_an_app_without_models_starts_and_says_how_to_train_them(tmp_path):
    demo = app.build_demo(tmp_path / "no-runs")
    texts = "\n".join(str(block.value) for block in demo.blocks.values()
                      if type(block).__name__ == "Markdown" and block.value)
    for command in TRAIN_COMMANDS.values():
        assert f"`{command}`" in texts
    assert "No trained models found" in texts


def test_command_line_and_environment(monkeypatch):
    args = app.get_args_parser().parse_args(["--runs", "elsewhere", "--hub", "me/a", "me/b@v1", "--port", "7000"])
    assert (args.runs, args.hub, args.port, args.host, args.share) == ("elsewhere", ["me/a", "me/b@v1"], 7000, None, False)
    calls = {}
    monkeypatch.setattr(app.torch, "set_num_threads", lambda n: calls.update(threads=n))
    monkeypatch.setenv("CNN_STUDIO_HUB_MODELS", "me/c, me/a")
    monkeypatch.setattr(app, "build_demo", lambda runs, hub, device: calls.update(runs=runs, hub=hub) or _Fake())
    app.main(["--runs", "r", "--hub", "me/a"])
    assert calls["runs"] == Path("r") and calls["hub"] == ["me/a", "me/c"] and calls["threads"] >= 1
    assert _Fake.launched["share"] is False and _Fake.launched["max_file_size"] == app.MAX_FILE_SIZE


class _Fake:
    launched: dict = {}
    local_url = "http://127.0.0.1:7860/"

    def launch(self, **kwargs):
        _Fake.launched = kwargs

    def block_thread(self):
        pass


@pytest.mark.parametrize("api, sample", [("/gradcam_cifar10", "sample_boat.png"),
                                         ("/gradcam_catsdogs", "cat_drawing.png"),
                                         ("/gradcam_catsdogs_re", "cat_drawing.png")])
def test_gradcam_panels_of_the_classify_tabs_answer(client, api, sample):
    from gradio_client import handle_file
    from ui.explain_handlers import PREDICTED
    heat, caption = client.predict(handle_file(ASSETS / sample), None, PREDICTED, 0.5, api_name=api)
    assert heat and "Grad-CAM" in caption
