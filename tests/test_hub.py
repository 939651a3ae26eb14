"""Hub push, loading from a Hub cache, and the generated Space (all offline).

- The upload path runs huggingface_hub's own code (HfApi.upload_folder, which builds the commit
  operations from the staged folder and the allow/delete patterns) up to the HTTP boundary:
  HfApi's network methods are replaced at the method level and the real commit operations they
  receive are checked (paths, sizes, hashes), never an imitation of the Hub.
- Loading by repo id uses a Hub cache laid out as huggingface_hub lays it out
  (models--user--name/{blobs,refs,snapshots,trees}) with HF_HUB_OFFLINE.
- The Space is tested in tests/test_space.py.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import huggingface_hub.hf_api
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard, constants

from models.artifact import ArtifactError, load_model, resolve_source
from publish import common, hub

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "cnn-studio-test/mnist-tiny"


def run_files(run: Path) -> dict[str, int]:
    return {p.relative_to(run).as_posix(): p.stat().st_size for p in run.rglob("*") if p.is_file()}


def expected_release(run: Path) -> set[str]:
    """What docs/run-directory.md says a Hub repo holds: the run directory without checkpoint.pt
    (and without run_config.json and progress.json, which training keeps for itself),
    plus the model's standalone code, cnn_studio.py, and the project's LICENSE."""
    local_only = ("checkpoint.pt", "run_config.json", "progress.json")   # resume state, live progress
    return {name for name in run_files(run) if name not in local_only} | {"cnn_studio.py", "LICENSE"}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class FakeHubCalls:
    """Replaces HfApi's network methods; records what huggingface_hub would send, and the
    (library_name, library_version) each HfApi is created with (the user agent, `agents`)."""

    def __init__(self, monkeypatch, existing: list[str] = (), *, real_upload_folder: bool = False):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.agents: list[tuple] = []
        self.existing = list(existing)
        self.uploaded: dict[str, bytes] = {}     # what create_commit was given, read while the files exist
        names = ["create_repo", "create_branch", "list_repo_files", "create_commit", "add_space_variable"]
        if real_upload_folder:
            # upload_folder runs as it is; only its Xet pipeline (which commits through other internal
            # calls) is turned off, so that its operations reach create_commit, replaced below, and
            # its request asking the Hub to validate README.md's YAML is recorded, not sent
            monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)
            names.append("_validate_yaml")
        else:
            names.append("upload_folder")
        for name in names:
            monkeypatch.setattr(HfApi, name, self._recorder(name))
        real_init = HfApi.__init__

        def init(api, *args, **kwargs):
            self.agents.append((kwargs.get("library_name"), kwargs.get("library_version")))
            real_init(api, *args, **kwargs)
        monkeypatch.setattr(HfApi, "__init__", init)

    def _recorder(self, name):
        def method(api, *args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "list_repo_files":
                return list(self.existing)
            for op in kwargs.get("operations", []):
                if isinstance(op, CommitOperationAdd):
                    with op.as_file() as f:
                        self.uploaded[op.path_in_repo] = f.read()
            if name in ("create_commit", "upload_folder"):
                return type("CommitInfo", (), {"commit_url": "https://huggingface.co/commit/0123abc"})()
            return None
        return method

    def named(self, name):
        return [(a, k) for n, a, k in self.calls if n == name]


# --------------------------------------------------------------------------- push


def test_dry_run_lists_exactly_the_release_files(mnist_run, capsys, no_network, monkeypatch):
    monkeypatch.setattr(common, "get_token", lambda: pytest.fail("a dry run needs no token"))
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--dry-run", "--allow-partial"]) == 0
    out = capsys.readouterr().out
    listed = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].replace(",", "").isdigit():
            listed[parts[1]] = int(parts[0].replace(",", ""))
    sizes = run_files(mnist_run)
    assert set(listed) == expected_release(mnist_run)
    assert "checkpoint.pt" in sizes and "checkpoint.pt" not in listed
    assert {"config.json", "model.safetensors", "README.md", "curves.png", "history.json", "metrics.json",
            "predictions.json", "examples/index.json"} <= set(listed)
    assert any(name.startswith("tb/events.out.tfevents") for name in listed)
    for name, size in listed.items():
        if name not in ("README.md", "cnn_studio.py", "LICENSE"):   # the card is rendered again for the repo id
            assert size == sizes[name], name
    import models
    from cards import read_facts, render_card
    from publish.hub_code import code_sha256, hub_code_source
    url = common.default_code_url()
    code = hub_code_source(url, models.__version__)
    assert listed["cnn_studio.py"] == len(code.encode()) and listed["LICENSE"] == (REPO_ROOT / "LICENSE").stat().st_size
    card = render_card(read_facts(mnist_run, source=REPO_ID, hub=True, code_url=url, code_sha256=code_sha256(code)))
    assert listed["README.md"] == len(card.encode())
    assert "not uploaded: checkpoint.pt" in out


def test_push_is_one_upload_folder_of_the_staged_repo(mnist_run, monkeypatch):
    """`push` stages the repo in a temporary folder and calls HfApi.upload_folder once, with the
    repo's patterns as allow_patterns and delete_patterns: huggingface_hub itself turns that into
    the commit (adds from the folder; deletes of stale files of an earlier push, never of files
    outside the patterns)."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    fake = FakeHubCalls(monkeypatch, existing=[".gitattributes", "README.md", "examples/99_old.png",
                                              "tb/events.out.tfevents.1.old", "notes.txt"], real_upload_folder=True)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--private", "--revision", "v1",
                     "--allow-partial"]) == 0
    import models
    assert fake.agents == [("cnn-studio", models.__version__)]   # the Hub sees who uploads (user agent)

    [(args, kwargs)] = fake.named("create_repo")
    assert args == (REPO_ID,) and kwargs["exist_ok"] is True and kwargs["private"] is True
    assert kwargs["repo_type"] == "model"
    [(args, kwargs)] = fake.named("create_branch")
    assert args == (REPO_ID,) and kwargs == {"branch": "v1", "exist_ok": True}
    [(args, kwargs)] = fake.named("create_commit")
    assert kwargs["repo_id"] == REPO_ID and kwargs["revision"] == "v1"
    ops = kwargs["operations"]
    adds = [op for op in ops if isinstance(op, CommitOperationAdd)]
    deletes = [op for op in ops if isinstance(op, CommitOperationDelete)]

    assert {op.path_in_repo for op in adds} == expected_release(mnist_run)
    for op in adds:
        if op.path_in_repo in ("README.md", "cnn_studio.py", "LICENSE"):
            continue
        # the bytes create_commit was given (read while the staged folder existed) are the run's
        assert fake.uploaded[op.path_in_repo] == (mnist_run / op.path_in_repo).read_bytes(), op.path_in_repo
    assert fake.uploaded["LICENSE"] == (REPO_ROOT / "LICENSE").read_bytes()
    # stale release files of an earlier push go; files outside the repo's patterns stay
    assert sorted(op.path_in_repo for op in deletes) == ["examples/99_old.png", "tb/events.out.tfevents.1.old"]

    # the card uploaded is the one for this repo: it loads "user/name@v1", pins the code it runs and
    # keeps the accuracy (in the text only: this tiny run is evaluated on a --limit-val subset)
    text = fake.uploaded["README.md"].decode()
    card = ModelCard(text)
    metrics = json.loads((mnist_run / "metrics.json").read_text())
    assert card.data.eval_results is None and f"**{100 * metrics['accuracy']:.2f}%**" in text
    assert f'repo_id = "{REPO_ID}"' in text and 'revision="v1"' in text
    assert hashlib.sha256(fake.uploaded["cnn_studio.py"]).hexdigest() in text
    assert "load_model" not in text, "the pushed card's snippet needs no CNN Studio code"
    assert card.data.model_name == REPO_ID.split("/")[1]
    [(_, kwargs)] = fake.named("_validate_yaml")     # the Hub is asked to validate this card's metadata
    assert kwargs["content"] == text and kwargs["repo_type"] == "model"


def stage(run: Path, folder: Path, **kwargs) -> list[str]:
    return hub.stage_release(run, folder, **{"repo_id": REPO_ID, "allow_partial": True, **kwargs})


def test_missing_token_is_one_clear_line(mnist_run, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(common, "get_token", lambda: None)
    fake = FakeHubCalls(monkeypatch)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--allow-partial"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: no Hugging Face token: set HF_TOKEN or run `hf auth login`"
    assert fake.calls == []


def test_refused_upload_is_one_clear_line(mnist_run, monkeypatch, capsys):
    """A 403 from the Hub, turned into HfHubHTTPError by huggingface_hub itself."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    def refuse(api, repo_id, **kwargs):
        response = httpx2.Response(403, request=httpx2.Request("POST", "https://huggingface.co/api/repos/create"),
                                   json={"error": f"You don't have the rights to create a model under {repo_id}"})
        hf_raise_for_status(response)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.setattr(HfApi, "create_repo", refuse)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--allow-partial"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: upload to {REPO_ID} refused (HTTP 403)")
    assert "don't have the rights" in err


def test_offline_push_is_refused_by_huggingface_hub_itself(mnist_run, monkeypatch, capsys):
    """No method is replaced: HfApi really tries, and its offline guard stops it."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--allow-partial"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: upload to {REPO_ID}: HF_HUB_OFFLINE is set; unset it to reach the Hub"


def test_push_refuses_what_is_not_a_release(tmp_path, mnist_run, capsys):
    assert hub.main(["push", str(tmp_path / "nope"), "--repo-id", REPO_ID, "--dry-run"]) == 1
    assert "no such run directory" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(mnist_run, broken, ignore=shutil.ignore_patterns("checkpoint.pt"))
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert hub.main(["push", str(broken), "--repo-id", REPO_ID, "--dry-run", "--allow-partial"]) == 1
    err = capsys.readouterr().err
    assert "not a valid release" in err and "model.safetensors" in err
    assert hub.main(["push", str(mnist_run), "--repo-id", "no-namespace", "--dry-run", "--allow-partial"]) == 1
    assert "not a repo id" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Hub cache


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_into_hub_cache(run: Path, repo_id: str, cache: Path, revision: str = "main",
                       files: list[str] | None = None) -> Path:
    """Put the release files of `run` (or `files` of that folder) into a Hub cache as a download would leave them:
    blobs/<hash>, snapshots/<commit>/<path> symlinks to the blobs, refs/<revision>, and
    the tree listing huggingface_hub keeps per commit (written with its own function)."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(f"{repo_id}:{revision}:{run}".encode()).hexdigest()
    snapshot = storage / "snapshots" / commit
    entries = {}
    for name in files or hub.release_files(run):
        data = (run / name).read_bytes()
        lfs = name.endswith((".safetensors", ".png")) or name.startswith("tb/")
        blob = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
        (storage / "blobs").mkdir(parents=True, exist_ok=True)
        (storage / "blobs" / blob).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(storage / "blobs" / blob, link.parent))
        entries[name] = TreeCacheEntry(size=len(data), blob_id=_git_blob_sha1(data),
                                       lfs_sha256=blob if lfs else None, lfs_size=len(data) if lfs else None)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / revision).write_text(commit)
    write_tree_cache(str(storage), commit, entries)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf_home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_load_by_repo_id_from_the_cache_gives_the_local_logits(mnist_run, offline_cache, no_network):
    snapshot = lay_into_hub_cache(mnist_run, REPO_ID, offline_cache)
    local = load_model(mnist_run)
    remote = load_model(REPO_ID)
    assert remote.root == snapshot == resolve_source(f"{REPO_ID}@main")
    assert remote.info == local.info
    torch.manual_seed(0)
    x = torch.randn(4, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(remote.model(x), local.model(x))
    assert json.loads((remote.root / "metrics.json").read_text()) == json.loads((mnist_run / "metrics.json").read_text())


def test_uncached_repo_offline_is_a_clear_artifact_error(offline_cache, no_network):
    with pytest.raises(ArtifactError, match=r"cnn-studio-test/absent: not in the local Hub cache"):
        load_model("cnn-studio-test/absent")


def test_incomplete_cached_snapshot_is_a_clear_artifact_error(mnist_run, offline_cache, no_network):
    snapshot = lay_into_hub_cache(mnist_run, REPO_ID, offline_cache)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="not in the local Hub cache") as info:
        load_model(REPO_ID)
    assert "model.safetensors" in str(info.value)


def test_loading_a_repo_reports_each_stage_and_every_digest_it_checks(mnist_run, offline_cache, no_network):
    lay_into_hub_cache(mnist_run, REPO_ID, offline_cache)
    listed = [line.split()[1] for line in (mnist_run / "SHA256SUMS").read_text().splitlines()]
    heard = []
    load_model(REPO_ID, progress=lambda fraction, what: heard.append((fraction, what)))
    assert heard[0] == (0.0, f"fetching {REPO_ID} from the Hub") and heard[-1] == (1.0, f"loaded {REPO_ID}")
    checks = [what for _, what in heard if what.startswith("checking sha256 of ")]
    assert checks == [f"checking sha256 of {name} ({i} of {len(listed)})" for i, name in enumerate(listed, 1)]
    fractions = [fraction for fraction, _ in heard]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)


def test_the_app_loads_a_hub_repo_with_a_progress_bar_and_then_serves_it(mnist_run, offline_cache, monkeypatch,
                                                                         tmp_path):
    """Models panel, "Load from the Hub": the page sees Gradio progress while the digests are
    checked (the check of the weights waits for the test, so the progress is seen mid-load), then
    the repo is listed and is the MNIST tab's model."""
    import threading
    import time

    from gradio_client import Client, handle_file

    from models import artifact
    from tests.conftest import launch_app
    from ui.catalog import Catalog
    lay_into_hub_cache(mnist_run, REPO_ID, offline_cache)
    weights_check, release = threading.Event(), threading.Event()
    real_sha256 = artifact.file_sha256

    def held_sha256(path):
        if Path(path).name == artifact.WEIGHTS_FILE:
            weights_check.set()
            assert release.wait(300), "the test never released the load"
        return real_sha256(path)
    monkeypatch.setattr(artifact, "file_sha256", held_sha256)
    demo, url = launch_app(Catalog.from_sources(tmp_path / "no-runs"), hub_loading_off=None)
    try:
        client = Client(url, verbose=False, download_files=False)
        job = client.submit(repo_id=f"  {REPO_ID} ", api_name="/load_hub_model")
        assert weights_check.wait(300), "the load never reached the weights' digest"
        seen = []
        while not any("checking sha256 of model.safetensors" in (u.desc or "") for u in seen):
            assert not job.done(), job.result()
            seen = job.status().progress_data or []
            time.sleep(0.05)             # poll gently: the load is held until `release`, however long this takes
        release.set()
        table = job.result(timeout=300)
        assert f"Hub repo `{REPO_ID}`" in table and "loaded · default" in table
        assert demo.catalog.default_key("mnist") == f"hub:{REPO_ID}"
        top, _ = client.predict(handle_file(REPO_ROOT / "assets" / "mnist_3.png"), f"hub:{REPO_ID}",
                                api_name="/classify_digit_image")
        assert top["label"] in [str(i) for i in range(10)]
        from gradio_client.exceptions import AppError
        with pytest.raises(AppError, match=r"repo_id: hub:cnn-studio-test/absent is unavailable: .*not in the "
                                           r"local Hub cache"):
            client.predict(repo_id="cnn-studio-test/absent", api_name="/load_hub_model")
        with pytest.raises(AppError, match=r"repo_id: '\.\./etc' is not a Hub repo id"):
            client.predict(repo_id="../etc", api_name="/load_hub_model")
        assert [e.key for e in demo.catalog.entries()] == [f"hub:{REPO_ID}"]    # failed loads add nothing
    finally:
        release.set()
        demo.close()


# --------------------------------------------------------------------------- partial runs


def test_push_refuses_a_partial_run_unless_allowed(mnist_run, capsys, no_network):
    config = json.loads((mnist_run / "config.json").read_text())
    assert config["limit_train"] and config["limit_val"], "the tiny run is a --limit run"
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--dry-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "is a partial run" in err and f"--limit-train {config['limit_train']}" in err
    assert f"--limit-val {config['limit_val']}" in err and "--allow-partial" in err
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--dry-run", "--allow-partial"]) == 0


def test_partial_run_card_never_reports_the_subset_as_the_split(mnist_run, tmp_path):
    stage(mnist_run, tmp_path)
    text = (tmp_path / "README.md").read_text()
    card = ModelCard(text)
    metrics = json.loads((mnist_run / "metrics.json").read_text())
    config = json.loads((mnist_run / "config.json").read_text())
    assert not card.data.eval_results, "a subset evaluation is kept out of the model-index"
    assert "model-index" not in text.split("---", 2)[1]
    assert f"on {metrics['num_images']:,} images of a subset of the `{metrics['split']}` split" in text
    assert f"`--limit-val {config['limit_val']}`" in text and "A partial run" in text


# --------------------------------------------------------------------------- usable without CNN Studio


ALLOWED_DISTRIBUTIONS = ["torch", "torchvision", "safetensors", "huggingface_hub"]


def required_distributions(distributions: list[str]) -> set[str]:
    """The installed distributions `pip install <distributions>` would bring: them and what they
    require, recursively (markers evaluated for this machine, no extras)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    todo, found = list(distributions), {}
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            found[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for line in found[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return set(found)


def user_python(tmp_path: Path, distributions: list[str], hf_home: Path | None = None) -> tuple[str, dict, Path]:
    """(python, env, working folder) of a Hub user who ran `pip install <distributions>` in a fresh
    virtual environment: `python -m venv` (no system site-packages), whose site-packages holds
    exactly those distributions and their requirements, linked from this machine's installation
    (each distribution's top-level files and folders as its RECORD lists them, so that torch's
    5 GB are not copied). Anything else is absent, as for that user: CNN Studio, gradio, timm
    unless asked for. The working folder is outside the repository and the Hub is offline (files
    come from `hf_home`'s cache)."""
    from importlib import metadata
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    for name in required_distributions(distributions):
        dist = metadata.distribution(name)
        for top in {Path(f).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            source, target = Path(dist.locate_file(top)), site / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
    env.update(HF_HOME=str(hf_home or tmp_path / "hf_home"), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    python = str(venv / "bin" / "python")
    # what that user has: PIL (a torchvision requirement) and numpy, not gradio or CNN Studio
    probe = subprocess.run([python, "-c", "import PIL, numpy\nfor name in ('gradio', 'models', 'cards'):\n try:\n"
                            "  __import__(name)\n except ImportError:\n  print('absent', name)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True)
    assert probe.stdout.split() == ["absent", "gradio", "absent", "models", "absent", "cards"], \
        probe.stdout + probe.stderr
    return python, env, elsewhere


def pushed_repo(run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(the repo's files as a push stages them, HF_HOME whose Hub cache holds exactly them)."""
    repo = tmp_path / "pushed"
    names = hub.stage_release(run, repo, repo_id=REPO_ID, allow_partial=True)
    lay_into_hub_cache(repo, REPO_ID, tmp_path / "hf_home" / "hub", files=names)
    return repo, tmp_path / "hf_home"


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


@pytest.mark.parametrize("run_fixture", ["mnist_run", "catsdogs_run"])
def test_card_snippet_runs_with_torch_alone_and_matches_predict_probs(run_fixture, request, tmp_path):
    """The pushed card's snippet, verbatim, where only torch, torchvision, safetensors and
    huggingface_hub are installed, against a Hub cache holding exactly what the push uploads; it
    runs cnn_studio.py only while that file has the digest the card pins."""
    from models.predict import predict_probs

    run = request.getfixturevalue(run_fixture)
    repo, hf_home = pushed_repo(run, tmp_path)
    snippet = python_blocks((repo / "README.md").read_text())[0]
    [example] = re.findall(r'hf_hub_download\(repo_id, "(examples/[^"]+)"\)', snippet)
    python, env, elsewhere = user_python(tmp_path, ALLOWED_DISTRIBUTIONS, hf_home)
    result = subprocess.run([python, "-c", snippet], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    probs = ast.literal_eval(result.stdout.strip().splitlines()[-1])

    loaded = load_model(run)
    expected = predict_probs(loaded.model, loaded.config, run / example)
    assert list(probs) == list(expected) == list(loaded.config.labels)
    for label in expected:
        assert probs[label] == pytest.approx(expected[label], abs=1e-5), label

    # the code is pinned: a cnn_studio.py changed after the card was written is refused, not run
    cached = next((hf_home / "hub").rglob("snapshots/*/cnn_studio.py")).resolve()
    cached.write_text(cached.read_text() + "\nprint('changed')\n")
    result = subprocess.run([python, "-c", snippet], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0 and "cnn_studio.py is not the file this card pins" in result.stderr
    assert "changed" not in result.stdout


def awkward_images(folder: Path) -> dict[str, Path]:
    """A dark 7 on light paper, in the forms the app accepts and a hand-kept preparation gets wrong:
    16-bit greyscale (scaled, not clipped), a palette with a transparent background, RGBA, an
    EXIF-rotated JPEG, an extreme aspect ratio (the long side cropped before the resize), and the
    plain 200 px drawing (the MNIST step makes each MNIST-like, as the app does)."""
    import numpy as np
    from PIL import Image, ImageDraw
    folder.mkdir(parents=True, exist_ok=True)

    def seven(size, paper=235, ink=20, mode="L"):
        img = Image.new(mode, size, paper)
        w, h = size
        x, y, s = w // 2, h // 2, min(w, h) * 0.35
        ImageDraw.Draw(img).line([(x - s * 0.6, y - s), (x + s * 0.6, y - s), (x - s * 0.1, y + s)], fill=ink,
                                 width=max(2, int(s / 5)))
        return img

    seven((200, 200)).save(folder / "digit7.png")
    grey = np.asarray(seven((120, 90)), dtype=np.float64)
    grey16 = (grey * 257 * np.linspace(0.8, 1.0, 120)[None, :]).astype(np.uint16)   # 16-bit, a gradient
    Image.fromarray(grey16).save(folder / "grey16.png")
    palette = seven((90, 110), paper=0, ink=1, mode="P")
    palette.putpalette([255, 0, 255, 30, 30, 90] + [0] * 762)          # index 0: magenta, to be transparent
    palette.save(folder / "palette.png", transparency=0)
    alpha = np.asarray(seven((100, 70), paper=0, ink=255))              # opaque strokes, transparent paper
    rgba = np.dstack([np.full_like(alpha, 40), np.full_like(alpha, 10), np.full_like(alpha, 200), alpha])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    photo = seven((140, 80), mode="RGB", paper=(225, 220, 200), ink=(30, 30, 40)).rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 6                                    # orientation: rotate 90 degrees to display
    photo.save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    strip = Image.new("L", (1400, 60), 235)
    strip.paste(seven((60, 60)), (670, 0))
    strip.save(folder / "strip.png")                    # 1400x60: longer than 16 times its height
    return {p.name: p for p in sorted(folder.iterdir())}


PARITY = '''
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("cnn_studio", sys.argv[1])
cnn_studio = sys.modules["cnn_studio"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cnn_studio)
model = cnn_studio.from_pretrained(sys.argv[2])
print(json.dumps({path: model.classify(path) for path in sys.argv[3:]}))
'''


@pytest.mark.parametrize("run_fixture", ["mnist_run", "catsdogs_run"])
def test_hub_code_gives_the_apps_answer_on_every_kind_of_image(run_fixture, request, tmp_path):
    """cnn_studio.py, generated from models/predict.py, run without the project, against
    predict_probs (the app's answer) on the images a hand-kept preparation got wrong."""
    run = request.getfixturevalue(run_fixture)
    assert_hub_code_gives_the_apps_answer(run, awkward_images(tmp_path / "images"), tmp_path)


def assert_hub_code_gives_the_apps_answer(run: Path, images: dict[str, Path], work: Path) -> None:
    """The repo as a push stages it, its cnn_studio.py run in a fresh venv without the project: the
    answer of predict_probs (the app's, the task's step included) to 1e-5 on every image."""
    from models.predict import predict_probs
    repo, _ = pushed_repo(run, work)
    python, env, elsewhere = user_python(work, ALLOWED_DISTRIBUTIONS)
    result = subprocess.run([python, "-c", PARITY, str(repo / "cnn_studio.py"), str(repo), *map(str, images.values())],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    loaded = load_model(run)
    for name, path in images.items():
        expected = predict_probs(loaded.model, loaded.config, path)
        got = answers[str(path)]
        assert list(got) == list(expected), (run, name)
        for label in expected:
            assert got[label] == pytest.approx(expected[label], abs=1e-5), (run, name, label)


def test_hub_code_loads_strictly_and_refuses_a_foreign_weight_file(catsdogs_run, tmp_path):
    """cnn_studio.py is plain code: imported from a file, it loads a folder and refuses wrong weights."""
    import importlib.util

    from publish.hub_code import hub_code_source
    code = tmp_path / "cnn_studio.py"
    code.write_text(hub_code_source("https://example.invalid/cnn-studio"))
    spec = importlib.util.spec_from_file_location("cnn_studio_standalone", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # as the card's snippet does: dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    model = module.from_pretrained(catsdogs_run)
    assert model.labels == json.loads((catsdogs_run / "config.json").read_text())["labels"]
    folder = tmp_path / "wrong"
    shutil.copytree(catsdogs_run, folder, ignore=shutil.ignore_patterns("checkpoint.pt", "tb", "examples"))
    config = json.loads((folder / "config.json").read_text())
    config.update(architecture="vgg19_bn_32", input_size=32, num_classes=2)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="state_dict"):
        module.from_pretrained(folder)
