"""Who may train from the browser: on by default only on a loopback address, never on a Space (which
has no training code), on a public address only with --allow-training; the Train tab then says so
and its endpoints refuse."""
from __future__ import annotations

import pytest

import app


@pytest.mark.parametrize("host, allowed", [(None, True), ("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.20", False),
                                           ("::", False), ("my-host.example", False)])
def test_training_is_on_by_default_only_on_a_loopback_address(host, allowed):
    assert (app.training_refusal(host, False, environ={}) is None) is allowed
    assert app.training_refusal(host, True, environ={}) is None


def test_a_space_never_trains_and_offers_no_flag():
    """The platform runs `python app.py` with no flags, and a Space carries no training code: with or
    without --allow-training, the refusal says training needs the full project and how to run it."""
    space = {"SPACE_ID": "me/studio"}
    for allow in (False, True):
        refusal = app.training_refusal("0.0.0.0", allow, environ=space)
        assert refusal == app.ON_A_SPACE and "python -m training.train" in refusal
        assert "--allow-training" not in refusal
    loading = app.hub_loading_refusal("0.0.0.0", False, environ=space)
    assert "README" in loading and "--allow-training" not in loading
    assert app.hub_loading_refusal("0.0.0.0", True, environ=space) is None


def test_the_command_line_decides(monkeypatch):
    calls = {}

    class Fake:
        is_running = False   # as under `gradio app.py`: main returns after launch instead of blocking

        def launch(self, **kwargs):
            calls["launch"] = kwargs

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(app.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(app, "build_demo", lambda runs, hub, **kw: calls.update(kw) or Fake())
    app.main(["--host", "0.0.0.0"])
    assert "0.0.0.0" in calls["training_off"] and "--allow-training" in calls["training_off"]
    app.main(["--host", "0.0.0.0", "--allow-training"])
    assert calls["training_off"] is None
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    app.main([])
    assert calls["training_off"] is not None


def test_a_refused_app_says_why_and_its_endpoints_refuse(tmp_path):
    from gradio_client import Client
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    import gradio as gr
    refusal = app.training_refusal("0.0.0.0", False, environ={})
    demo, url = launch_app(Catalog.from_sources(tmp_path / "runs"), training_off=refusal)
    try:
        texts = "\n".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.value)
        assert "Training from the browser is off: the app listens on 0.0.0.0" in texts
        start = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "train-start")
        assert start.interactive is False
        client = Client(url, verbose=False, download_files=False)
        with pytest.raises(Exception, match="Training from the browser is off"):
            client.predict("mnist", "baseline", "quick", None, None, None, None, None, None, api_name="/train_start")
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("progress.json"))
    finally:
        demo.close()
