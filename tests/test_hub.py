"""Hub push, loading from a Hub cache, and the generated Space (all offline).

- The upload path runs huggingface_hub's own code (HfApi, CommitOperationAdd) up to the HTTP
  boundary: HfApi's network methods are replaced at the method level and the real commit
  operations they receive are checked (paths, sizes, hashes), never an imitation of the Hub.
- Loading by repo id uses a Hub cache laid out as huggingface_hub lays it out
  (models--user--name/{blobs,refs,snapshots,trees}) with HF_HUB_OFFLINE.
- The Space folder's README parses with metadata_load; its app.py is started from that
  folder and answers /classify_digit with the model from the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard, constants
from huggingface_hub.repocard import metadata_load

from models.artifact import ArtifactError, load_model, resolve_source
from publish import hub

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "cnn-studio-test/mnist-tiny"
DEV_ONLY = {"pytest", "hypothesis", "playwright", "gradio-client", "gradio_client"}


def run_files(run: Path) -> dict[str, int]:
    return {p.relative_to(run).as_posix(): p.stat().st_size for p in run.rglob("*") if p.is_file()}


def expected_release(run: Path) -> set[str]:
    """What docs/run-directory.md says a Hub repo holds: the run directory without checkpoint.pt
    (and without run_config.json, the in-progress config that training removes or leaves)."""
    return {name for name in run_files(run) if name not in ("checkpoint.pt", "run_config.json")}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class FakeHubCalls:
    """Replaces HfApi's network methods; records what huggingface_hub would send."""

    def __init__(self, monkeypatch, existing: list[str] = ()):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.existing = list(existing)
        for name in ("create_repo", "create_branch", "list_repo_files", "create_commit",
                     "add_space_variable", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._recorder(name))

    def _recorder(self, name):
        def method(api, *args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "list_repo_files":
                return list(self.existing)
            if name in ("create_commit", "upload_folder"):
                return type("CommitInfo", (), {"commit_url": "https://huggingface.co/commit/0123abc"})()
            return None
        return method

    def named(self, name):
        return [(a, k) for n, a, k in self.calls if n == name]


# --------------------------------------------------------------------------- push


def test_dry_run_lists_exactly_the_release_files(mnist_run, capsys, no_network, monkeypatch):
    monkeypatch.setattr(hub, "get_token", lambda: pytest.fail("a dry run needs no token"))
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--dry-run"]) == 0
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
        if name != "README.md":           # the card is rendered again for the repo id
            assert size == sizes[name], name
    from cards import read_facts, render_card
    assert listed["README.md"] == len(render_card(read_facts(mnist_run, source=REPO_ID)).encode())
    assert "not uploaded: checkpoint.pt" in out


def test_release_operations_are_what_create_commit_receives(mnist_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    fake = FakeHubCalls(monkeypatch, existing=[".gitattributes", "README.md", "examples/99_old.png",
                                              "tb/events.out.tfevents.1.old", "notes.txt"])
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID, "--private", "--revision", "v1"]) == 0

    [(args, kwargs)] = fake.named("create_repo")
    assert args == (REPO_ID,) and kwargs["exist_ok"] is True and kwargs["private"] is True
    assert kwargs["repo_type"] == "model"
    [(args, kwargs)] = fake.named("create_branch")
    assert args == (REPO_ID,) and kwargs == {"branch": "v1", "exist_ok": True}
    [(args, kwargs)] = fake.named("create_commit")
    assert args == (REPO_ID,) and kwargs["revision"] == "v1"
    ops = kwargs["operations"]
    adds = [op for op in ops if isinstance(op, CommitOperationAdd)]
    deletes = [op for op in ops if isinstance(op, CommitOperationDelete)]

    assert {op.path_in_repo for op in adds} == expected_release(mnist_run)
    for op in adds:
        if op.path_in_repo == "README.md":
            continue
        data = (mnist_run / op.path_in_repo).read_bytes()
        assert op.upload_info.size == len(data), op.path_in_repo
        assert op.upload_info.sha256 == hashlib.sha256(data).digest(), op.path_in_repo
    # stale release files of an earlier push go; files outside the release patterns stay
    assert sorted(op.path_in_repo for op in deletes) == ["examples/99_old.png", "tb/events.out.tfevents.1.old"]

    # the card uploaded is the one for this repo: it loads "user/name@v1" and keeps the accuracy
    [card_op] = [op for op in adds if op.path_in_repo == "README.md"]
    with card_op.as_file() as f:
        text = f.read().decode()
    assert card_op.upload_info.size == len(text.encode())
    card = ModelCard(text)
    metrics = json.loads((mnist_run / "metrics.json").read_text())
    assert card.data.eval_results[0].metric_value == metrics["accuracy"]
    assert f'load_model("{REPO_ID}@v1")' in text


def test_keep_card_uploads_the_readme_as_it_is(mnist_run):
    ops = hub.release_operations(mnist_run, repo_id=REPO_ID, regenerate_card=False)
    [card] = [op for op in ops if op.path_in_repo == "README.md"]
    assert card.upload_info.sha256 == hashlib.sha256((mnist_run / "README.md").read_bytes()).digest()


def test_missing_token_is_one_clear_line(mnist_run, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    fake = FakeHubCalls(monkeypatch)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID]) == 1
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
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: upload to {REPO_ID} refused (HTTP 403)")
    assert "don't have the rights" in err


def test_offline_push_is_refused_by_huggingface_hub_itself(mnist_run, monkeypatch, capsys):
    """No method is replaced: HfApi really tries, and its offline guard stops it."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.main(["push", str(mnist_run), "--repo-id", REPO_ID]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: upload to {REPO_ID}: HF_HUB_OFFLINE is set; unset it to reach the Hub"


def test_push_refuses_what_is_not_a_release(tmp_path, mnist_run, capsys):
    assert hub.main(["push", str(tmp_path / "nope"), "--repo-id", REPO_ID, "--dry-run"]) == 1
    assert "no such run directory" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(mnist_run, broken, ignore=shutil.ignore_patterns("checkpoint.pt"))
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert hub.main(["push", str(broken), "--repo-id", REPO_ID, "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "not a valid release" in err and "model.safetensors" in err
    assert hub.main(["push", str(mnist_run), "--repo-id", "no-namespace", "--dry-run"]) == 1
    assert "not a repo id" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Hub cache


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_into_hub_cache(run: Path, repo_id: str, cache: Path, revision: str = "main") -> Path:
    """Put the release files of `run` into a Hub cache as a download would leave them:
    blobs/<hash>, snapshots/<commit>/<path> symlinks to the blobs, refs/<revision>, and
    the tree listing huggingface_hub keeps per commit (written with its own function)."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import repo_folder_name

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(f"{repo_id}:{revision}:{run}".encode()).hexdigest()
    snapshot = storage / "snapshots" / commit
    entries = {}
    for name in hub.release_files(run):
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
    assert remote.read_json("metrics.json") == json.loads((mnist_run / "metrics.json").read_text())


def test_uncached_repo_offline_is_a_clear_artifact_error(offline_cache, no_network):
    with pytest.raises(ArtifactError, match=r"cnn-studio-test/absent: not in the local Hub cache"):
        load_model("cnn-studio-test/absent")


def test_incomplete_cached_snapshot_is_a_clear_artifact_error(mnist_run, offline_cache, no_network):
    snapshot = lay_into_hub_cache(mnist_run, REPO_ID, offline_cache)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="not in the local Hub cache") as info:
        load_model(REPO_ID)
    assert "model.safetensors" in str(info.value)


# --------------------------------------------------------------------------- the Space


MODELS = [REPO_ID, "cnn-studio-test/cifar10@0123456789abcdef0123456789abcdef01234567",
          "cnn-studio-test/catsdogs@v2"]


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory) -> Path:
    if not (REPO_ROOT / "app.py").is_file():
        pytest.skip("app.py does not exist yet")
    out = tmp_path_factory.mktemp("space") / "space"
    hub.space(out, MODELS)
    return out


def test_space_folder_holds_the_app_and_no_training_code(space_dir):
    top = sorted(p.name for p in space_dir.iterdir())
    assert top == sorted(["app.py", "ui", "models", "cards", "assets", "requirements.txt", "README.md"])
    assert not list(space_dir.rglob("__pycache__")) and not list(space_dir.rglob("*.pyc"))
    for src_dir in ("ui", "models", "cards"):
        expected = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / src_dir).rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")}
        got = {p.relative_to(space_dir).as_posix() for p in (space_dir / src_dir).rglob("*") if p.is_file()}
        assert got == expected
    assert (space_dir / "app.py").read_bytes() == (REPO_ROOT / "app.py").read_bytes()
    assert (space_dir / "cards" / "template.md").is_file()


def test_space_readme_header(space_dir):
    import gradio
    meta = metadata_load(space_dir / "README.md")
    for key in ("title", "emoji", "colorFrom", "colorTo"):
        assert meta[key]
    assert meta["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert meta["app_file"] == "app.py"
    assert meta["license"] == "mit"
    assert meta["models"] == [REPO_ID, "cnn-studio-test/cifar10", "cnn-studio-test/catsdogs"]
    assert meta["preload_from_hub"] == [
        REPO_ID,
        "cnn-studio-test/cifar10 config.json,model.safetensors,README.md,history.json,metrics.json "
        "0123456789abcdef0123456789abcdef01234567",
        "cnn-studio-test/catsdogs",
    ]
    assert f'{hub.HUB_MODELS_ENV}="{" ".join(MODELS)}"' in (space_dir / "README.md").read_text()


def test_space_requirements_cover_the_imports_and_nothing_for_tests(space_dir):
    lines = (space_dir / "requirements.txt").read_text().split()
    names = {hub._norm(line) for line in lines}
    assert {"torch", "torchvision", "huggingface-hub", "safetensors", "numpy", "pillow"} <= names
    assert not names & DEV_ONLY
    assert "gradio" not in names, "the Space installs gradio from sdk_version"
    assert "tensorboard" not in names and "tqdm" not in names  # training only
    # every third-party module the Space code imports is installed by a line (or by the sdk)
    from importlib import metadata
    by_module = metadata.packages_distributions()
    modules = hub.imported_modules(hub.space_code_files(space_dir))
    for module in modules:
        if module in sys.stdlib_module_names or module in hub.LOCAL_PACKAGES or module == "__future__":
            continue
        dists = {hub._norm(d) for d in by_module.get(module, [module])}
        assert dists & (names | {"gradio"}), f"{module} (imported by {sorted(modules[module])}) is not installed"


def test_space_dry_run_writes_nothing(tmp_path, capsys, no_network):
    if not (REPO_ROOT / "app.py").is_file():
        pytest.skip("app.py does not exist yet")
    out = tmp_path / "space"
    assert hub.main(["space", str(out), "--models", REPO_ID, "--space-id", "me/space", "--dry-run"]) == 0
    assert not out.exists()
    text = capsys.readouterr().out
    assert "app.py" in text and "requirements.txt" in text and "training/" not in text


def test_space_refuses_a_non_empty_folder(tmp_path, capsys):
    if not (REPO_ROOT / "app.py").is_file():
        pytest.skip("app.py does not exist yet")
    (tmp_path / "keep.txt").write_text("mine")
    assert hub.main(["space", str(tmp_path), "--models", REPO_ID]) == 1
    assert "not empty" in capsys.readouterr().err
    assert hub.main(["space", str(tmp_path), "--models", REPO_ID, "--force"]) == 0
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "app.py").is_file()


def test_space_upload_creates_a_gradio_space_with_the_model_variable(space_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    fake = FakeHubCalls(monkeypatch)
    hub.upload_space(space_dir, "me/cnn-studio", MODELS)
    [(args, kwargs)] = fake.named("create_repo")
    assert args == ("me/cnn-studio",) and kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio"
    assert kwargs["space_variables"] == [{"key": hub.HUB_MODELS_ENV, "value": " ".join(MODELS)}]
    [(args, kwargs)] = fake.named("add_space_variable")
    assert args == ("me/cnn-studio", hub.HUB_MODELS_ENV, " ".join(MODELS))
    [(args, kwargs)] = fake.named("upload_folder")
    assert kwargs["repo_id"] == "me/cnn-studio" and kwargs["repo_type"] == "space"
    assert Path(kwargs["folder_path"]) == space_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_space_app_serves_classify_digit_from_the_hub_cache(space_dir, mnist_run, tmp_path):
    """`python app.py` in the Space folder, models from the env variable, files from the cache."""
    from gradio_client import Client, handle_file

    hf_home = tmp_path / "hf_home"
    lay_into_hub_cache(mnist_run, REPO_ID, hf_home / "hub")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_", "PYTHONPATH"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_DISABLE_TELEMETRY="1", GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
               **{hub.HUB_MODELS_ENV: REPO_ID})
    log = tmp_path / "app.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "app.py", "--threads", "1"], cwd=space_dir, env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 90
        client = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                time.sleep(1)
        assert client is not None, f"the Space app did not start:\n{log.read_text()[-3000:]}"
        digit = REPO_ROOT / "assets" / "mnist_7.png"
        if not digit.is_file():
            digit = next((mnist_run / "examples").glob("*.png"))
        sketch = {"background": handle_file(str(digit)), "layers": [], "composite": handle_file(str(digit))}
        result = client.predict(sketch, f"hub:{REPO_ID}", api_name="/classify_digit")
        label = result[1]
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert set(confidences) <= {str(i) for i in range(10)} and confidences
        assert label["label"] in {str(i) for i in range(10)}
        # the Space folder has no runs/: the answer came from the Hub model in the cache
        assert not (space_dir / "runs").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
