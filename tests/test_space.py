"""The generated Space: what it holds, that it resolves for its Python, that it runs.

- The Space folder is written once per module; its README parses with huggingface_hub's
  metadata_load and declares the keys of the Spaces configuration reference.
- Its requirements.txt is resolved by pip itself (`pip install --dry-run --python-version`)
  for the python_version the README declares, against the package indexes pip is configured
  with on this machine; the test skips only when none of them can be reached.
- Every file in the Space is shown to be used: the app is started from the folder under
  `gradio app.py` (reload mode: it must find the module-level `demo`) with an audit hook
  that records each file opened; only the platform's own files (README.md, requirements.txt)
  may stay unread.
- The Space runs as the platform runs it (`python app.py`, GRADIO_SERVER_NAME/PORT and SPACE_ID
  set, no model variable): it finds its models in its own README and loads them from a Hub cache
  with real symlinked snapshots (as preload_from_hub leaves them; HF_HUB_OFFLINE), one of them at
  the commit its README pins, and answers /classify_digit through gradio_client.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from huggingface_hub.repocard import metadata_load

from publish import hub, space
from tests.test_app_safety import declared_body_answer
from tests.test_hub import REPO_ID, FakeHubCalls, lay_into_hub_cache, no_network  # noqa: F401 (fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = [REPO_ID, "cnn-studio-test/cifar10@0123456789abcdef0123456789abcdef01234567",
          "cnn-studio-test/catsdogs"]
DEV_ONLY = {"pytest", "hypothesis", "playwright", "gradio-client", "gradio_client"}
PLATFORM_FILES = {"README.md", "requirements.txt", "LICENSE"}   # for the platform and readers, not the app
RUNTIME_DIRS = ["app.py", "ui", "models", "analysis", "cards", "training", "publish"]   # not tests/, scripts/


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("space") / "space"
    space.space(out, MODELS)
    return out


def space_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def third_party_imports(files: list[Path], own: set[str]) -> dict[str, set[str]]:
    """Top-level module -> files importing it, for absolute imports outside stdlib and `own`."""
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own and top != "__future__":
                    found.setdefault(top, set()).add(str(path))
    return found


def requirement_names(lines: list[str]) -> dict[str, str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out[canonicalize_name(Requirement(line).name)] = line
    return out


# --------------------------------------------------------------------------- the project's requirements


def test_project_requirements_list_every_runtime_import_as_a_range_admitting_what_is_installed():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    listed = requirement_names(lines)
    files = []
    for name in RUNTIME_DIRS:
        path = REPO_ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    own = {p.stem if p.suffix == ".py" else p.name for p in REPO_ROOT.iterdir()}
    by_module = metadata.packages_distributions()
    imports = third_party_imports(files, own)
    assert "pandas" in imports, "ui/ imports pandas (the reason this test exists)"
    for module, where in imports.items():
        dists = {canonicalize_name(d) for d in by_module.get(module, [module])}
        assert dists & set(listed), f"{module} (imported by {sorted(where)[:3]}) is not in requirements.txt"
    for name, line in listed.items():
        req = Requirement(line)
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{line} excludes the installed {installed}"
        assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), f"{line}: no upper bound"
        assert any(s.operator in (">", ">=", "~=", "==") for s in req.specifier), f"{line}: no lower bound"


# --------------------------------------------------------------------------- the Space folder


def test_space_holds_the_app_and_nothing_it_does_not_run(space_dir):
    files = space_files(space_dir)
    assert (space_dir / "app.py").read_bytes() == (REPO_ROOT / "app.py").read_bytes()
    tops = {f.split("/", 1)[0] for f in files}
    assert not tops & {"training", "publish", "tests", "scripts", "benchmarks", "docs", "results"}
    assert not any(f.startswith("assets/screenshots/") for f in files), "screenshots are never shown by the app"
    code = "\n".join((space_dir / f).read_text() for f in files if f.endswith(".py"))
    if not re.search(r"^\s*(from|import) cards\b", code, flags=re.M):
        assert "cards" not in tops, "cards/ is copied although no Space file imports it"
    for f in files:   # copies are byte-identical to the repo's files
        if f not in PLATFORM_FILES:
            assert (space_dir / f).read_bytes() == (REPO_ROOT / f).read_bytes(), f
    assert not list(space_dir.rglob("__pycache__")) and not list(space_dir.rglob("*.pyc"))
    # the license the README declares comes with the code
    assert (space_dir / "LICENSE").read_bytes() == (REPO_ROOT / "LICENSE").read_bytes()


def test_space_readme_header(space_dir):
    import gradio
    meta = metadata_load(space_dir / "README.md")
    for key in ("title", "emoji", "colorFrom", "colorTo"):
        assert meta[key]
    assert meta["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    # "Any valid Python 3.x or 3.x.x version" (Spaces configuration reference); a string, so
    # that YAML does not read 3.10 as the number 3.1
    assert isinstance(meta["python_version"], str) and re.fullmatch(r"3\.\d+(\.\d+)?", meta["python_version"])
    assert meta["python_version"] == space.SPACE_PYTHON
    assert meta["app_file"] == "app.py"
    assert meta["license"] == "mit"
    assert meta["models"] == [REPO_ID, "cnn-studio-test/cifar10", "cnn-studio-test/catsdogs"]
    # "repository_name file1,file2 commit_sha" (Spaces configuration reference): a commit needs its files,
    # the ones the app reads (models.artifact.RELEASE_PATTERNS without wildcards)
    from models.artifact import RELEASE_PATTERNS
    assert meta["preload_from_hub"] == [
        REPO_ID,
        "cnn-studio-test/cifar10 " + ",".join(p for p in RELEASE_PATTERNS if "*" not in p)
        + " 0123456789abcdef0123456789abcdef01234567",
        "cnn-studio-test/catsdogs",
    ]
    assert {"config.json", "model.safetensors", "SHA256SUMS"} <= set(meta["preload_from_hub"][1].split()[1].split(","))
    # the app reads this header itself: no variable is needed, however the folder is uploaded
    import app
    assert app.hub_models({}, space_dir / "README.md") == MODELS
    assert app.hub_models({space.HUB_MODELS_ENV: "a/b c/d"}, space_dir / "README.md") == ["a/b", "c/d"]
    assert space.HUB_MODELS_ENV + "=" not in (space_dir / "README.md").read_text()


def test_a_branch_or_tag_is_refused_as_a_space_model(tmp_path, capsys):
    """The README can pin a model only to a commit; a branch the Space could not serve is refused."""
    assert hub.main(["space", str(tmp_path / "s"), "--models", "cnn-studio-test/catsdogs@v2"]) == 1
    err = capsys.readouterr().err
    assert "commit" in err and "'v2'" in err and not (tmp_path / "s").exists()


def test_space_requirements_cover_every_third_party_import(space_dir):
    lines = (space_dir / "requirements.txt").read_text().splitlines()
    # free Spaces are CPU-only: torch and torchvision come from PyTorch's CPU wheel index
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    names = requirement_names(lines)
    project = requirement_names((REPO_ROOT / "requirements.txt").read_text().splitlines())
    assert {"torch", "torchvision", "huggingface-hub", "safetensors", "numpy", "pillow", "pandas"} <= set(names)
    assert not set(names) & DEV_ONLY
    assert "gradio" not in names, "the Space installs gradio from sdk_version"
    assert "tensorboard" not in names and "tqdm" not in names  # training only
    for name, line in names.items():
        assert line == project[name], "the Space uses the project's own requirement lines"
    py_files = [space_dir / f for f in space_files(space_dir) if f.endswith(".py")]
    own = {p.stem if p.suffix == ".py" else p.name for p in space_dir.iterdir()}
    by_module = metadata.packages_distributions()
    from packaging.utils import canonicalize_name
    for module, where in third_party_imports(py_files, own).items():
        dists = {canonicalize_name(d) for d in by_module.get(module, [module])}
        assert dists & (set(names) | {"gradio"}), f"{module} (imported by {sorted(where)}) is not installed"


def _configured_indexes() -> tuple[list[str], list[str]]:
    """(index URLs, find-links locations) pip uses on this machine, as `pip config list` shows them."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    values: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        values.setdefault(option, []).extend(shlex.split(value.strip().strip("'\"")))
    indexes = values.get("index-url") or ["https://pypi.org/simple"]
    return indexes + values.get("extra-index-url", []), values.get("find-links", [])


def _reachable(location: str) -> bool:
    if location.startswith("file://"):
        return Path(location[len("file://"):]).exists()
    if "://" not in location:
        return Path(location).exists()
    try:
        with urllib.request.urlopen(location.rstrip("/") + "/pip/", timeout=15):
            return True
    except Exception:
        return False


def test_space_requirements_resolve_for_the_declared_python(space_dir, tmp_path):
    """pip's resolver, for the Space's python_version, on wheels only, with gradio==sdk_version."""
    meta = metadata_load(space_dir / "README.md")
    lines = (space_dir / "requirements.txt").read_text().splitlines()
    indexes, find_links = _configured_indexes()
    if not any(_reachable(loc) for loc in indexes + find_links):
        pytest.skip(f"no package index reachable (pip is configured with {indexes + find_links})")
    # PyTorch's CPU index cannot be reached from here (only package registries are): the
    # resolver check uses the configured indexes, where torch/torchvision are the same
    # versions; the CPU line itself is checked above.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join([line for line in lines if not line.startswith("--extra-index-url")]
                                      + [f"gradio=={meta['sdk_version']}"]) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--target", str(tmp_path / "never-written"),   # pip 23 needs it with --python-version
         "--python-version", meta["python_version"], "--only-binary=:all:",
         "-r", str(requirements), "--report", str(report)],
        capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, f"pip could not resolve the Space for Python {meta['python_version']}:\n" \
                                   f"{result.stderr[-3000:]}"
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    assert installed["gradio"] == meta["sdk_version"]
    assert {"torch", "torchvision", "pandas", "huggingface-hub", "safetensors"} <= set(installed)
    assert not (tmp_path / "never-written").exists()


def test_space_requirements_for_an_older_python_fail_to_resolve_when_a_floor_needs_3_11(tmp_path):
    """The failure the check exists for: pandas>=3.1 (Python >= 3.11 only) on the platform's
    default Python 3.10. Skips like the test above when no index can be reached."""
    indexes, find_links = _configured_indexes()
    if not any(_reachable(loc) for loc in indexes + find_links):
        pytest.skip(f"no package index reachable (pip is configured with {indexes + find_links})")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--no-deps",
         "--target", str(tmp_path / "t"), "--python-version", "3.10", "--only-binary=:all:", "pandas>=3.1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "pandas" in result.stderr


def test_space_dry_run_writes_nothing(tmp_path, capsys, no_network):
    out = tmp_path / "space"
    assert hub.main(["space", str(out), "--models", REPO_ID, "--space-id", "me/space", "--dry-run"]) == 0
    assert not out.exists()
    text = capsys.readouterr().out
    assert "app.py" in text and "requirements.txt" in text and "training/" not in text


def test_space_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert hub.main(["space", str(tmp_path), "--models", REPO_ID]) == 1
    assert "not empty" in capsys.readouterr().err
    assert hub.main(["space", str(tmp_path), "--models", REPO_ID, "--force"]) == 0
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "app.py").is_file()


def test_space_upload_creates_a_gradio_space_whose_readme_lists_the_models(space_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    fake = FakeHubCalls(monkeypatch)
    space.upload_space(space_dir, "me/cnn-studio")
    import models
    assert fake.agents == [("cnn-studio", models.__version__)]
    [(args, kwargs)] = fake.named("create_repo")
    assert args == ("me/cnn-studio",) and kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio"
    # no Space variable: it would override the README for good (the app reads the README's models)
    assert "space_variables" not in kwargs and not fake.named("add_space_variable")
    [(args, kwargs)] = fake.named("upload_folder")
    assert kwargs["repo_id"] == "me/cnn-studio" and kwargs["repo_type"] == "space"
    assert Path(kwargs["folder_path"]) == space_dir


# --------------------------------------------------------------------------- the Space running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_DISABLE_TELEMETRY="1",
               GRADIO_SERVER_NAME="127.0.0.1", **extra)
    return env


def _wait_for_client(url: str, proc: subprocess.Popen, log: Path, seconds: int = 420):
    from gradio_client import Client
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return Client(url, verbose=False)
        except Exception:
            time.sleep(1)
    raise AssertionError(f"the Space app did not start:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the app and every process it started (`gradio app.py` runs app.py in a child of its own)."""
    import os
    import signal
    for sig in (signal.SIGTERM, signal.SIGKILL):   # the group outlives its leader while a child runs
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass


AUDIT_HOOK = '''
import os, sys
_root = os.path.realpath(os.environ["SPACE_ROOT"])
_log = open(os.environ["SPACE_OPEN_LOG"], "a", buffering=1)
def _record(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path.startswith(_root + os.sep):
            _log.write(os.path.relpath(path, _root) + "\\n")
sys.addaudithook(_record)
'''


def test_gradio_cli_finds_the_module_level_demo_and_the_app_uses_every_space_file(space_dir, tmp_path):
    """`gradio app.py` in a copy of the Space, no models: each file is opened (imported or read)."""
    folder = tmp_path / "space"
    shutil.copytree(space_dir, folder)
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)   # runs first in every Python it starts
    opened_log = tmp_path / "opened.txt"
    port = _free_port()
    env = _clean_env(GRADIO_SERVER_PORT=str(port), PYTHONPATH=str(hook_dir), SPACE_ROOT=str(folder),
                     SPACE_OPEN_LOG=str(opened_log), HF_HOME=str(tmp_path / "hf_home"))
    gradio_cli = Path(sys.executable).with_name("gradio")
    command = [str(gradio_cli)] if gradio_cli.is_file() else [sys.executable, "-m", "gradio.cli"]
    log = tmp_path / "app.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([*command, "app.py"], cwd=folder, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = _wait_for_client(f"http://127.0.0.1:{port}/", proc, log)
        assert client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        # The request-body cap comes with the app's Blocks, whoever launches it (issue 14 §3).
        status, body = declared_body_answer(f"http://127.0.0.1:{port}/", 200 * 2**20)
        assert status == 413 and "request body too large" in body, (status, body[:300])
        text = log.read_text()
        assert "Watching demo: demo" in text, text[-2000:]
        assert "not found" not in text and "is not the launched demo" not in text, text[-2000:]
        # reload mode works: after an edit, the watcher (which re-runs app.py) sees the change
        deadline = time.monotonic() + 300
        while "Changes detected" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            (folder / "app.py").write_text((folder / "app.py").read_text() + "\n")
            time.sleep(5)
        text = log.read_text()
        assert "Changes detected" in text, f"the reload watcher never ran:\n{text[-2000:]}"
        assert "local URL:  None" not in text
        assert declared_body_answer(f"http://127.0.0.1:{port}/", 200 * 2**20)[0] == 413   # and after a reload
    finally:
        _stop(proc)
    opened = set()
    for line in opened_log.read_text().splitlines():
        # a module imported from its cached bytecode counts as that module's source being used
        opened.add(re.sub(r"__pycache__/(\w+)\.[\w-]+\.pyc$", r"\1.py", line))
    unused = space_files(space_dir) - opened - PLATFORM_FILES
    assert not unused, f"files in the Space that the app never opens: {sorted(unused)}"


def test_importing_app_builds_and_launches_nothing_and_app_demo_is_the_blocks(tmp_path):
    """One fresh interpreter: importing app builds nothing, app.demo is the (unlaunched) Blocks,
    and building the whole app imported nothing of training/ (the app never does)."""
    code = ("import sys, app, gradio as gr\n"
            "assert 'demo' not in vars(app), 'built on import'\n"
            "demo = app.demo\n"
            "assert isinstance(demo, gr.Blocks) and app.demo is demo and not demo.is_running\n"
            "training = sorted(m for m in sys.modules if m == 'training' or m.startswith('training.'))\n"
            "assert not training, f'the app imported {training}'\n"
            "print('ok', len(demo.fns))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env=_clean_env(PYTHONPATH=str(REPO_ROOT)), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok ") and int(result.stdout.split()[1]) > 0


def test_the_space_serves_the_models_its_readme_lists_as_the_platform_runs_it(mnist_run, tmp_path):
    """A Space uploaded without --space-id (git push, hf upload): `python app.py` with the platform's
    variables and no model variable; the models come from the README's `models`, one at the commit
    its `preload_from_hub` line pins, from a Hub cache as preloading leaves it. The page offers no
    flag the platform never passes, and the Train tab is one line saying why it is not there."""
    import urllib.request

    from gradio_client import handle_file

    import app
    hf_home = tmp_path / "hf_home"
    pinned = "cnn-studio-test/mnist-pinned"
    lay_into_hub_cache(mnist_run, REPO_ID, hf_home / "hub")
    commit = lay_into_hub_cache(mnist_run, pinned, hf_home / "hub", revision="some-branch").name
    folder = tmp_path / "space"
    space.space(folder, [REPO_ID, f"{pinned}@{commit}"])
    port = _free_port()
    env = _clean_env(HF_HOME=str(hf_home), GRADIO_SERVER_PORT=str(port), SPACE_ID="me/cnn-studio")
    assert space.HUB_MODELS_ENV not in env
    log = tmp_path / "app.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=folder, env=env,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = _wait_for_client(f"http://127.0.0.1:{port}/", proc, log)
        digit = REPO_ROOT / "assets" / "mnist_7.png"
        sketch = {"background": handle_file(str(digit)), "layers": [], "composite": handle_file(str(digit))}
        for key in (f"hub:{REPO_ID}", f"hub:{pinned}@{commit}"):
            label = client.predict(sketch, key, api_name="/classify_digit")[0]
            assert label["label"] in {str(i) for i in range(10)}, key
        assert not (folder / "runs").exists(), "the answers came from the Hub models in the cache"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=60) as response:
            page = response.read().decode()
        assert "--allow-training" not in page, "no notice on a Space offers a flag its platform never passes"
        assert f"Training is not available here: {app.ON_A_SPACE}." in page
        assert "serving the models its README lists" in page
        assert "/train_start" not in json.dumps(client.view_api(print_info=False, return_format="dict"))
    finally:
        _stop(proc)
