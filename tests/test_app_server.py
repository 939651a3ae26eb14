"""The launched app driven through gradio_client: every api_name answers, probabilities sum to 1,
bad uploads get a one-line message and the server keeps serving. One server for the module
(tests/conftest.py: app_server), on a free local port.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import gradio as gr
import pytest

import app
from models.tasks import TASKS
from ui import serving
from tests.studio_helpers import untrained_run

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MODEL_APIS = {"classify_cifar10", "classify_digit", "classify_digit_image", "classify_catdog", "classify_folder",
              "model_input_cifar10", "model_input_digit_image", "model_input_catdog", "model_input_folder"}
OTHER_APIS = {"augment", "architecture", "curves", "model_card"}
TAB_NAMES = ("cifar10", "digit_image", "catdog", "folder")            # each classify endpoint's name, less classify_
# Picking an example (by its place in the list: the client names no file), then answering it.
EXAMPLE_LOADERS = {f"{name}_example{step}" for name in TAB_NAMES for step in ("", "_answer")}
# The "See why" tab and the Grad-CAM panels of the classify tabs (tested in test_explain_tab.py).
EXPLAIN_APIS = {"gradcam", "gradcam_targets", "confusion", "confusion_cell", "occlusion_probe", "occlusion_click",
                "occlusion_sweep", "threshold", "calibration", "top_losses", "erasing_study",
                "gradcam_cifar10", "gradcam_mnist", "gradcam_catsdogs", "gradcam_catsdogs_re", "gradcam_folder"}
# Reloading the model lists (tests/test_app_reload.py) and the Train tab (tests/test_train_tab.py);
# each public step has a private follow-up that re-renders the page's lists.
STUDIO_APIS = {"open_page", "reload_models", "train_finished", "train_command", "train_start", "train_stop",
               "train_resume", "train_status", "train_upload", "load_hub_model"}
STUDIO_PRIVATE = {"open_page_views", "reload_models_views", "train_finished_views", "train_start_status",
                  "train_task_options", "train_upload_cleared",
                  "load_hub_model_views"}
# Private steps that keep a page in step: a model change re-answers, the answers' captions are shown,
# an upload the page could not answer is cleared, a picked sample replaces an upload (issue 15).
UI_PRIVATE = {f"{step}_{name}" for name in TAB_NAMES for step in ("reclassify", "captions", "cleared")} | {
    "gradcam_rerun", "augment_sample"} | {
    # what the model sees, asked by the page after each answer (of an upload, an example, a drawing, a new run)
    f"seen_{answer}" for name in TAB_NAMES for answer in (f"classify_{name}", f"{name}_example_answer", f"reclassify_{name}")
} | {"seen_classify_digit"}


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
    backend = {fn.api_name for fn in demo.fns.values() if fn.fn is not None}
    assert backend == (MODEL_APIS | OTHER_APIS | EXAMPLE_LOADERS | EXPLAIN_APIS | STUDIO_APIS | STUDIO_PRIVATE
                       | UI_PRIVATE)
    # Steps that run in the browser only (clearing a Grad-CAM whose image changed) are no endpoints.
    assert all(fn.api_visibility == "private" for fn in demo.fns.values() if fn.fn is None)
    assert all(fn.api_visibility == "private" for fn in demo.fns.values() if fn.api_name in UI_PRIVATE)


def test_the_api_page_lists_every_endpoint(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {f"/{name}" for name in MODEL_APIS | OTHER_APIS | EXPLAIN_APIS} <= endpoints


SHORT_NAME = 3        # issue 12 §5: no parameter name shorter than this


def test_every_input_and_output_has_a_descriptive_name(client):
    """view_api() is how API users meet the app: every parameter of every named endpoint has a
    name of at least three characters and a label, every output a label of its own (Gradio
    falls back to `value_<id>` / `parameter_<id>` when a component has none)."""
    import re
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert endpoints
    problems = []
    for name, info in endpoints.items():
        for p in info["parameters"]:
            if len(p["parameter_name"]) < SHORT_NAME or re.fullmatch(r"param_\d+", p["parameter_name"]):
                problems.append(f"{name}: parameter {p['parameter_name']!r}")
            if not p["label"] or re.fullmatch(r"parameter_\d+", p["label"]):
                problems.append(f"{name}: parameter {p['parameter_name']!r} labelled {p['label']!r}")
        for r in info["returns"]:
            if not r["label"] or re.fullmatch(r"value_\d+", r["label"]):
                problems.append(f"{name}: output labelled {r['label']!r}")
    assert not problems, problems


def test_the_readme_api_examples_call_real_endpoints_with_real_parameter_names(client):
    """Each client.predict(...) in the API reference (docs/api.md, linked from the README) names an
    endpoint the server has, and only keyword arguments that are parameters of that endpoint; every
    endpoint family is shown."""
    import ast
    import re
    repo = Path(__file__).resolve().parents[1]
    assert "(docs/api.md)" in (repo / "README.md").read_text(encoding="utf-8")
    section = (repo / "docs" / "api.md").read_text(encoding="utf-8")
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    called = set()
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "predict":
                kwargs = {k.arg: k.value for k in node.keywords}
                api = ast.literal_eval(kwargs.pop("api_name"))
                assert api in endpoints, api
                names = {p["parameter_name"] for p in endpoints[api]["parameters"]}
                assert set(kwargs) <= names, (api, set(kwargs) - names)
                called.add(api)
    families = ["/classify_", "/model_input_", "/gradcam", "/augment", "/architecture", "/curves", "/model_card",
                "/confusion", "/threshold", "/occlusion_"]
    assert all(any(api.startswith(f) for api in called) for f in families), called
    for api in endpoints:                       # every endpoint is at least named in the section
        assert f"`{api}`" in section or f'"{api}"' in section, api


def test_classify_cifar10(client):
    from gradio_client import handle_file
    label, bars = client.predict(handle_file(ASSETS / "sample_boat.png"), api_name="/classify_cifar10")
    assert label["label"] in {row[0] for row in bars["data"]}
    assert len(bars["data"]) == 10 and math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)
    # what the model sees is its own endpoint (an answer carries no file to download): the 32x32 input, upscaled
    seen = client.predict(handle_file(ASSETS / "sample_boat.png"), api_name="/model_input_cifar10")
    assert seen["path"].endswith("model_input.png") or seen["path"].endswith(".png")


def test_classify_digit_from_a_sketch_and_from_an_upload(client, app_catalog):
    from gradio_client import handle_file
    digit = handle_file(ASSETS / "mnist_3.png")
    label, bars = client.predict({"background": None, "layers": [], "composite": digit}, api_name="/classify_digit")
    assert label["label"] in [str(d) for d in range(10)]
    assert len(bars["data"]) == 10 and math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)
    label, bars = client.predict(digit, api_name="/classify_digit_image")
    assert math.isclose(bar_total(bars), 1.0, abs_tol=1e-4)


def test_classify_catdog_gives_both_models(client):
    from gradio_client import handle_file
    base, base_bars, erasing, erasing_bars = client.predict(handle_file(ASSETS / "cat_drawing.png"),
                                                             api_name="/classify_catdog")
    for label, bars in ((base, base_bars), (erasing, erasing_bars)):
        assert {c["label"] for c in label["confidences"]} == {"cat", "dog"}
        assert math.isclose(label_total(label), 1.0, abs_tol=1e-6)
        assert math.isclose(bar_total(bars), 1.0, abs_tol=1e-4) and len(bars["data"]) == 2


def test_the_other_endpoints_answer(client):
    gallery, text = client.predict("Cats vs Dogs + Random Erasing", "cat drawing", None, 1, 3, api_name="/augment")
    assert len(gallery) == 4 and "Random Erasing" in text
    table, text = client.predict("Cats vs Dogs: resnet50", 1, api_name="/architecture")
    assert "23,510,081" in text and table["headers"] == ["layer", "output shape", "parameters", "mult-adds"]
    accuracy, loss = client.predict(["cifar10/tiny"], api_name="/curves")       # the figures (numbers: history.json)
    assert accuracy["type"] == loss["type"] == "matplotlib" and accuracy["plot"].startswith("data:image/")
    card, curves = client.predict("cifar10/tiny", api_name="/model_card")
    assert "CIFAR-10" in card and not card.startswith("---") and curves


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"garbage" * 50])
def test_a_bad_upload_gets_a_one_line_message_and_the_server_keeps_serving(client, tmp_path, content):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    bad = tmp_path / "upload.png"
    bad.write_bytes(content)
    for api in ("/classify_cifar10", "/model_input_cifar10"):
        with pytest.raises(AppError) as err:
            client.predict(handle_file(bad), api_name=api)
        message = str(err.value)
        assert "Could not read the image" in message and "\n" not in message.strip() and "Traceback" not in message
    label, bars = client.predict(handle_file(ASSETS / "sample_boat.png"), api_name="/classify_cifar10")
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


def test_a_plain_launch_has_the_apps_limits_and_no_public_link(app_server):
    """conftest launches the app with no options at all (as `gradio app.py` or a script would):
    the upload limit, the request-body cap and the theme come with the app's own Blocks."""
    from ui.http_limits import RequestLimits
    demo, _ = app_server
    assert demo.share is False and demo.share_url is None
    assert demo.max_file_size == 10 * 1024 * 1024
    assert [m.kwargs for m in demo.app.user_middleware if m.cls is RequestLimits] == [
        {"max_body_bytes": 16 * 1024 * 1024, "local_only": False}]     # training off: any host name may ask
    assert demo.theme.to_dict() == app.theme().to_dict() and demo.css == app.CSS
    assert demo._queue.max_size == app.QUEUE_MAX_SIZE
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values() if fn.api_name in MODEL_APIS}
    assert set(limits.values()) == {serving.INFERENCE.limit}


def test_an_app_without_models_starts_and_says_how_to_train_them(tmp_path):
    demo = app.build_demo(tmp_path / "no-runs")
    texts = "\n".join(str(block.value) for block in demo.blocks.values()
                      if type(block).__name__ == "Markdown" and block.value)
    for command in [t.train_command(v) for t in TASKS.values() for v in t.variants]:
        assert f"`{command}`" in texts
    assert "No trained models found" in texts


def test_command_line_and_environment(monkeypatch):
    args = app.get_args_parser().parse_args(["--runs", "elsewhere", "--hub", "me/a", "me/b@v1", "--port", "7000"])
    assert (args.runs, args.hub, args.port, args.host, args.share) == ("elsewhere", ["me/a", "me/b@v1"], 7000, None, False)
    calls = {}
    monkeypatch.setattr(app.torch, "set_num_threads", lambda n: calls.update(threads=n))
    monkeypatch.setenv("CNN_STUDIO_HUB_MODELS", "me/c, me/a")
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(app, "build_demo", lambda runs, hub, **kw: calls.update(runs=runs, hub=hub, **kw) or _Fake())
    app.main(["--runs", "r", "--hub", "me/a", "--data-dir", "d"])
    assert calls["runs"] == Path("r") and calls["hub"] == ["me/a", "me/c"] and calls["threads"] >= 1
    assert calls["data_dir"] == Path("d") and calls["training_off"] is None   # 127.0.0.1: training allowed
    assert calls["hub_loading_off"] is None                                    # and Hub repos from the page
    assert _Fake.launched["share"] is False
    app.main(["--share"])                                   # a public link only when asked for
    assert _Fake.launched["share"] is True and "prevent_thread_lock" not in _Fake.launched
    assert calls["training_off"].startswith("the app is shared through a public link")
    assert calls["hub_loading_off"] == calls["training_off"]


def test_an_app_that_does_not_say_so_downloads_no_hub_repo_for_a_visitor(client):
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError, match=r"Loading Hub repos from the page is off: it is enabled by `python app.py`"):
        client.predict(repo_id="cnn-studio-test/anything", api_name="/load_hub_model")


class _Fake:
    launched: dict = {}
    local_url = "http://127.0.0.1:7860/"
    is_running = True

    def launch(self, **kwargs):
        _Fake.launched = kwargs

    def block_thread(self):
        pass


@pytest.mark.parametrize("api, sample", [("/gradcam_cifar10", "sample_boat.png"),
                                         ("/gradcam_catsdogs", "cat_drawing.png"),
                                         ("/gradcam_catsdogs_re", "cat_drawing.png")])
def test_gradcam_panels_of_the_classify_tabs_answer(client, api, sample):
    from gradio_client import handle_file
    from ui.why.gradcam import PREDICTED
    heat, caption = client.predict(handle_file(ASSETS / sample), None, PREDICTED, 0.5, api_name=api)
    assert heat and "Grad-CAM" in caption


# --- issue 21 §1: a tab and an endpoint per task record ---------------------------------------------

def test_a_task_registered_in_process_gets_its_tab_and_endpoint(tmp_path, monkeypatch):
    """No other change: a record and a run of it give a tab and /<api_name>, with the run's labels."""
    from gradio_client import Client, handle_file
    from torch import nn

    from models import registry, tasks
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    monkeypatch.setitem(registry.ARCHITECTURES, "tiny_net", registry.Architecture(
        build=lambda cfg: nn.Sequential(nn.Conv2d(cfg.in_channels, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(4, cfg.num_outputs)),
        title="Tiny net", description="one conv, one linear", gradcam_layer="0", gradcam_grid="its one conv"))
    task = tasks.Task(name="tiny", title="Tiny shapes", architecture="tiny_net", dataset=tasks.LOCAL_FOLDER,
                      recipe=tasks.CIFAR_RECIPE, quick={}, labels=("circle", "square", "star"), input_size=16,
                      description="Three shapes.", api_name="classify_tiny")
    monkeypatch.setitem(tasks.TASKS, "tiny", task)
    untrained_run(tmp_path / "runs" / "tiny" / "one", task.model_config(), "tiny")
    demo, url = launch_app(Catalog.from_sources(tmp_path / "runs"))
    try:
        assert "tiny" in {block.id for block in demo.blocks.values() if isinstance(block, gr.Tab)}
        client = Client(url, verbose=False, download_files=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/classify_tiny"]
        assert [p["parameter_name"] for p in params["parameters"]] == ["image", "model_run"]
        top, bars = client.predict(handle_file(ASSETS / "sample_boat.png"), None, api_name="/classify_tiny")
        assert {c["label"] for c in top["confidences"]} == {"circle", "square", "star"}
        assert client.predict(handle_file(ASSETS / "sample_boat.png"), None, api_name="/model_input_tiny")["path"]
        assert [row[0] for row in bars["data"]] == ["circle", "square", "star"]
    finally:
        demo.close()


def test_classify_folder_answers_with_the_classes_of_the_run_chosen(tmp_path):
    """/classify_folder (image, model_run): a model trained on your own images answers with its own
    classes; another run of the task, with other folders, with its own."""
    from gradio_client import Client, handle_file

    from models.tasks import TASKS
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    small = TASKS["folder"].with_architecture("vgg19_bn_32")
    untrained_run(tmp_path / "runs" / "folder" / "fruit", small.model_config(("apple", "banana", "cherry")), "folder")
    demo, url = launch_app(Catalog.from_sources(tmp_path / "runs"))
    try:
        client = Client(url, verbose=False, download_files=False)
        untrained_run(tmp_path / "runs" / "folder-re" / "pets", small.model_config(("bird", "fish")), "folder",
                 variant="random-erasing", limit_train=10)      # trained while the app runs
        time.sleep(1.1)                                          # the runs folder is looked at once a second at most
        for run, labels in ((None, ["apple", "banana", "cherry"]), ("folder/fruit", ["apple", "banana", "cherry"]),
                            ("folder-re/pets", ["bird", "fish"])):
            top, bars = client.predict(handle_file(ASSETS / "cat_drawing.png"), run, api_name="/classify_folder")
            assert [row[0] for row in bars["data"]] == labels and top["label"] in labels, run
        assert "folder-re/pets (Random Erasing) · 50.0% val accuracy, partial run" in [
            label for label, _ in demo.catalog.choices("folder")]
    finally:
        demo.close()
