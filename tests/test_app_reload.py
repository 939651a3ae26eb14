"""Runs appear while the app is up: the app starts on an empty runs folder, a tiny MNIST run is
trained into it with the CLI (a separate process), and without restarting the server the run is
listed, selectable and classifies, through gradio_client and in Chromium. A run still training is
listed with its progress, never as broken.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess

import pytest

from tests.studio_helpers import REPO, chromium_path, train_cli

ASSETS = REPO / "assets"


@pytest.fixture(scope="module")
def mnist_data(mnist_dir):
    """Generated MNIST in the real idx format (tests/conftest.py), the --data-dir of every run here."""
    return mnist_dir


@pytest.fixture(scope="module")
def empty_app(tmp_path_factory):
    """The app launched on an empty runs folder: (demo, url, runs folder)."""
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    runs = tmp_path_factory.mktemp("runs-empty")
    demo, url = launch_app(Catalog.from_sources(runs))
    yield demo, url, runs
    demo.close()


@pytest.fixture(scope="module")
def trained_run(empty_app, mnist_data):
    """A tiny MNIST run trained with the CLI into the running app's runs folder."""
    _, _, runs = empty_app
    out = runs / "mnist" / "tiny-live"
    try:
        train_cli(out, mnist_data)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"training CLI failed:\n{e.stderr[-2000:]}")
    return out


def test_the_app_starts_empty_then_lists_a_run_trained_meanwhile(empty_app, trained_run):
    from gradio_client import Client, handle_file
    demo, url, _ = empty_app
    client = Client(url, verbose=False, download_files=False)
    # No reload needed: an API call finds the run, as the MNIST default, since the runs folder changed.
    label, bars = client.predict(handle_file(ASSETS / "mnist_3.png"), None, api_name="/classify_digit_image")
    assert label["label"] in {str(d) for d in range(10)}
    status = client.predict(api_name="/reload_models")
    assert "mnist/tiny-live" in status and "default" in status
    label, bars = client.predict(handle_file(ASSETS / "mnist_3.png"), "mnist/tiny-live",
                                       api_name="/classify_digit_image")
    assert label["label"] in {str(d) for d in range(10)}
    assert len(bars["data"]) == 10
    assert demo.catalog.default_key("mnist") == "mnist/tiny-live"


def test_every_model_list_offers_the_new_run_after_a_reload(empty_app, trained_run):
    from ui import live
    demo, _, _ = empty_app
    dropdowns = [v.component for v in live.latest_views(demo.catalog) if v.takes_value]
    states = live.render_all(demo.catalog, *[None] * len(dropdowns))
    offered = [s for s in states if getattr(s, "choices", None)]
    keys = {c[1] for s in offered for c in s.choices}
    assert "mnist/tiny-live" in keys
    # MNIST model, curves, cards and the See why lists (Grad-CAM; confusion matrix and top losses, one list).
    labels = [d.label for d, s in zip([v.component for v in live.latest_views(demo.catalog)], states)
              if any(c[1] == "mnist/tiny-live" for c in getattr(s, "choices", None) or [])]
    assert {"Model run", "Runs", "Model"} <= set(labels) and labels.count("Model run") >= 3


def test_a_run_still_training_is_listed_with_its_progress(tmp_path):
    from ui.catalog import Catalog
    run = tmp_path / "runs" / "mnist" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "progress.json").write_text(json.dumps({
        "status": "training", "task": "mnist", "variant": "baseline", "epoch": 3, "epochs": 40,
        "step": 10, "steps_per_epoch": 468, "last_val_accuracy": 0.9812, "pid": 1}))
    (run / "checkpoint.pt").write_bytes(b"not read by the app")
    catalog = Catalog.from_sources(tmp_path / "runs")
    assert catalog.entries() == [] and catalog.unavailable() == []
    text = catalog.status_markdown()
    assert "mnist/20260101-000000" in text and "epoch 3 of 40" in text
    assert "last test accuracy 98.12%" in text          # MNIST's held-out split, named as its finished runs name it
    assert "unavailable" not in text
    (run / "progress.json").write_text(json.dumps({"status": "training", "task": "mnist", "epoch": 3,
                                                   "epochs": 40, "pid": 2 ** 22 + 12345}))
    catalog.reload()
    assert "stopped (its process ended), resumable: epoch 3 of 40" in catalog.status_markdown()


def test_a_newer_run_becomes_the_default_and_a_deleted_one_goes(tmp_path, mnist_data):
    import shutil
    from ui.catalog import Catalog
    runs = tmp_path / "runs"
    train_cli(runs / "mnist" / "a-first", mnist_data)
    catalog = Catalog.from_sources(runs)
    first = catalog.entry("mnist/a-first")
    assert first.default and first.loaded is not None
    shutil.copytree(runs / "mnist" / "a-first", runs / "mnist" / "b-second")
    config = json.loads((runs / "mnist" / "b-second" / "config.json").read_text())
    config.update(run_name="b-second", created="2999-01-01T00:00:00+00:00")
    (runs / "mnist" / "b-second" / "config.json").write_text(json.dumps(config))
    from models.artifact import record_digest
    record_digest(runs / "mnist" / "b-second", "config.json")   # a copy, not a damaged run
    assert catalog.reload() == ["mnist/b-second"]
    assert catalog.default_key("mnist") == "mnist/b-second"
    assert catalog.entry("mnist/a-first") is first and first.loaded is not None   # kept, not reloaded
    shutil.rmtree(runs / "mnist" / "b-second")
    catalog.reload()
    assert [e.key for e in catalog.entries()] == ["mnist/a-first"] and catalog.default_key("mnist") == "mnist/a-first"


@pytest.mark.skipif(chromium_path() is None or importlib.util.find_spec("playwright") is None,
                    reason="browser test needs Chromium and Playwright")
def test_in_the_browser_a_page_load_shows_the_new_run_and_opens_on_its_tab(browser, empty_app, trained_run):
    _, url, _ = empty_app
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        # The only model is MNIST's: the page opens on the MNIST tab (selected after load).
        page.get_by_role("tab", name="MNIST", selected=True).wait_for()
        page.get_by_role("tab", name="Upload").click()
        page.locator("#mnist-upload input[type=file]").set_input_files(str(ASSETS / "mnist_3.png"))
        label = page.locator("#mnist-label").filter(has_text=re.compile(r"\d+(\.\d+)?%"))
        label.wait_for()
        assert set(label.inner_text().split()) & {str(d) for d in range(10)}
    finally:
        page.close()
    assert not errors


def test_every_model_list_follows_the_new_default_and_keeps_a_runs_chosen_by_hand(tmp_path, mnist_data):
    """Issue 24 item 6: after a run finishes, the lists that showed the old default (the MNIST tab,
    See why, the cards...) show the new one, as the Models panel does; a run chosen by hand stays."""
    import shutil

    import app
    from models.artifact import record_digest
    from ui import live
    runs = tmp_path / "runs"
    train_cli(runs / "mnist" / "a-first", mnist_data)
    for name, created in (("b-second", "2990-01-01"), ("c-third", "2999-01-01")):
        shutil.copytree(runs / "mnist" / "a-first", runs / "mnist" / name)
        config = json.loads((runs / "mnist" / name / "config.json").read_text())
        config.update(run_name=name, created=f"{created}T00:00:00+00:00")
        (runs / "mnist" / name / "config.json").write_text(json.dumps(config))
        record_digest(runs / "mnist" / name, "config.json")
        if name == "b-second":
            demo = app.build_demo(runs)                 # the app as it was before c-third finished
    catalog = demo.catalog
    assert catalog.default_key("mnist") == "mnist/b-second"
    views = live.latest_views(catalog)
    dropdowns = [v.component for v in views if v.takes_value]
    shown = [d.value for d in dropdowns]                # what a page opened before shows
    mnist_lists = [i for i, d in enumerate(dropdowns) if d.value == "mnist/b-second"]
    assert len(mnist_lists) >= 4
    by_hand = mnist_lists[0]
    shown[by_hand] = "mnist/a-first"                    # one list changed by the user
    catalog.reload()
    states = [s for s, v in zip(live.render_all(catalog, *shown), views) if v.takes_value]
    assert states[by_hand].value == "mnist/a-first"
    assert all(states[i].value == "mnist/c-third" for i in mnist_lists if i != by_hand)
    assert catalog.default_key("mnist") == "mnist/c-third" and catalog.former_defaults == {"mnist/b-second"}
