"""Model files are data, not code: every damaged or hostile model folder is refused by
models.artifact.load_model with an ArtifactError naming the file and the problem, and
loading has no side effects. Hub loads take a pinned revision and fetch no code."""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models.artifact import (CONFIG_FILE, MANIFEST_FILE, RELEASE_PATTERNS, WEIGHTS_FILE, ArtifactError,
                             load_model, read_weights, save_release)
from models.registry import create_model
from models.tasks import get_task

CFG = get_task("cifar10").model_config()


class _CreatesAFile:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A valid release folder (an untrained VGG19-BN for CIFAR-10) and its state dict."""
    torch.manual_seed(0)
    model = create_model(CFG)
    folder = tmp_path_factory.mktemp("release") / "good"
    save_release(folder, model, {**CFG.to_dict(), "task": "cifar10", "variant": "baseline"})
    return folder, {k: v.detach().clone() for k, v in model.state_dict().items()}


def variant(release, tmp_path: Path, *, weights: bytes | None = None, config: str | bytes | None = None,
            drop: str | None = None) -> Path:
    """A copy of the good folder with one file replaced (the big weights file is hard-linked)."""
    good, _ = release
    folder = tmp_path / "model"
    folder.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if name == drop:
            continue
        target = folder / name
        if name == WEIGHTS_FILE and weights is not None:
            target.write_bytes(weights)
        elif name == CONFIG_FILE and config is not None:
            target.write_bytes(config.encode() if isinstance(config, str) else config)
        else:
            os.link(good / name, target)
    return folder


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def assert_refused(folder: Path, file: str, problem: str) -> str:
    """load_model raises ArtifactError naming `file` and matching `problem`; nothing changes on disk."""
    before = snapshot(folder.parent)
    with pytest.raises(ArtifactError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder / file) in message, message
    assert re.search(problem, message), message
    assert "\n" not in message
    assert snapshot(folder.parent) == before, "loading changed files"
    return message


def safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"st-{os.getpid()}.safetensors"
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def test_the_good_folder_loads(release):
    good, state = release
    loaded = load_model(good)
    assert not loaded.model.training
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, state[k])


# --- weights ---------------------------------------------------------------------------------

def _weights_cases(release, marker: Path) -> dict[str, tuple[bytes, str]]:
    good, state = release
    data = (good / WEIGHTS_FILE).read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    evil_torch = io.BytesIO()
    torch.save({**{k: v for k, v in list(state.items())[:3]}, "x": _CreatesAFile(marker)}, evil_torch)
    return {
        "truncated": (data[: len(data) // 2], r"not a valid safetensors file \(.*(incomplete|not fully covered)"),
        "truncated in the header": (data[: 8 + header_len // 2], "not a valid safetensors file"),
        "header length only": (data[:8], "not a valid safetensors file"),
        "five bytes": (data[:5], "not a valid safetensors file"),
        "empty": (b"", "not a valid safetensors file"),
        "padded": (data + b"\0" * 64, r"not a valid safetensors file"),
        "random bytes": (os.urandom(4096), "not a valid safetensors file"),
        "pickle (torch.save) renamed": (evil_torch.getvalue(), "not a valid safetensors file"),
        "pickle renamed": (pickle.dumps({"x": _CreatesAFile(marker)}), "not a valid safetensors file"),
    }


CASES = ["truncated", "truncated in the header", "header length only", "five bytes", "empty", "padded",
         "random bytes", "pickle (torch.save) renamed", "pickle renamed"]


@pytest.mark.parametrize("case", CASES)
def test_unparseable_weights_are_refused(release, tmp_path, case):
    marker = tmp_path / "pwned"
    weights, problem = _weights_cases(release, marker)[case]
    folder = variant(release, tmp_path, weights=weights)
    assert_refused(folder, WEIGHTS_FILE, problem)
    assert not marker.exists(), "a pickle was executed"


def _state_case(state: dict[str, torch.Tensor], case: str) -> tuple[dict, str]:
    state = dict(state)
    if case == "wrong shape":
        state["classifier.4.weight"] = torch.zeros(11, 512)
        return state, r"classifier\.4\.weight has shape \(11, 512\), the architecture needs \(10, 512\)"
    if case == "missing tensor":
        del state["features.0.weight"]
        return state, r"do not match the architecture .*missing \['features\.0\.weight'\]"
    if case == "extra tensor":
        state["backdoor.weight"] = torch.zeros(3)
        return state, r"unexpected \['backdoor\.weight'\]"
    if case == "NaN":
        state["features.0.weight"] = state["features.0.weight"].clone()
        state["features.0.weight"][0, 0, 0, 0] = float("nan")
        return state, r"features\.0\.weight contains NaN or infinite values"
    if case == "inf in a buffer":
        state["features.1.running_var"] = torch.full_like(state["features.1.running_var"], float("inf"))
        return state, r"features\.1\.running_var contains NaN or infinite values"
    if case == "wrong dtype":
        state["classifier.1.weight"] = state["classifier.1.weight"].half()
        return state, r"classifier\.1\.weight is float16, the architecture needs float32"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["wrong shape", "missing tensor", "extra tensor", "NaN", "inf in a buffer",
                                  "wrong dtype"])
def test_weights_that_do_not_fit_are_refused(release, tmp_path, case):
    state, problem = _state_case(release[1], case)
    folder = variant(release, tmp_path, weights=safetensors_bytes(state))
    assert_refused(folder, WEIGHTS_FILE, problem)


def test_missing_weights_file(release, tmp_path):
    assert_refused(variant(release, tmp_path, drop=WEIGHTS_FILE), WEIGHTS_FILE, "missing")


# --- config.json -----------------------------------------------------------------------------

def _config(**changes) -> str:
    cfg = {**CFG.to_dict(), "task": "cifar10"}
    for key, value in changes.items():
        if value is _DROP:
            del cfg[key]
        else:
            cfg[key] = value
    return json.dumps(cfg)


_DROP = object()

CONFIG_CASES = {
    "not JSON": ("{not json", "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "UTF-16": (_config().encode("utf-16"), "not valid JSON"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "a list": ("[1, 2, 3]", "expected a JSON object"),
    "missing labels": (_config(labels=_DROP), "config is missing labels"),
    "missing architecture": (_config(architecture=_DROP), "config is missing architecture"),
    "unknown architecture": (_config(architecture="my_remote_code"), "unknown architecture 'my_remote_code'"),
    "float in_channels": (_config(in_channels=3.0), "in_channels must be an integer, not 3.0"),
    "string input_size": (_config(input_size="32"), "input_size must be an integer, not '32'"),
    "bool num_classes": (_config(num_classes=True), "num_classes must be an integer"),
    "labels and num_classes disagree": (_config(num_classes=9), "num_classes 9 does not fit 10 labels"),
    "labels not strings": (_config(labels=None), "labels must be a list of non-empty strings"),
    "mean a string": (_config(mean="abc"), "mean must be a list of numbers"),
    "NaN mean": (_config(mean=[float("nan")] * 3), "mean and std must be finite"),
    "negative std": (_config(std=[-1, 1, 1]), "std values must be positive"),
    "wrong channel count": (_config(mean=[0.5], std=[0.5]), "one value per input channel"),
    "input size the architecture cannot take": (_config(input_size=64), "vgg19_bn_32 is built for 32 px input"),
    "huge": (" " * 2_000_000 + _config(), "too large for a config"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_invalid_or_incomplete_config_is_refused(release, tmp_path, case):
    text, problem = CONFIG_CASES[case]
    folder = variant(release, tmp_path, config=text)
    assert_refused(folder, CONFIG_FILE, re.escape(problem))


def test_missing_config(release, tmp_path):
    assert_refused(variant(release, tmp_path, drop=CONFIG_FILE), CONFIG_FILE, "missing")


def test_a_consistent_config_for_other_weights_names_the_weights(release, tmp_path):
    labels = list(CFG.labels) + ["extra"]
    folder = variant(release, tmp_path, config=_config(num_classes=11, labels=labels))
    assert_refused(folder, WEIGHTS_FILE, r"classifier\.4\.\w+ has shape \(10.*needs \(11")


# --- Hub: pinned revisions, no code ------------------------------------------------------------

@pytest.fixture
def fake_hub(release, tmp_path, monkeypatch):
    """snapshot_download replaced by a local 'repo' that also holds code and a pickle, as a hostile
    repo might: returns the calls made."""
    good, _ = release
    snap = tmp_path / "models--someone--model" / "snapshots" / ("0" * 40)   # where the Hub cache keeps it
    snap.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        os.link(good / name, snap / name)
    marker = tmp_path / "pwned"
    (snap / "modeling.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (snap / "pytorch_model.bin").write_bytes(pickle.dumps(_CreatesAFile(marker)))
    calls = []

    def snapshot_download(repo_id, **kwargs):
        calls.append({"repo_id": repo_id, **kwargs})
        return str(snap)

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls, marker


def test_hub_load_pins_the_revision(fake_hub):
    calls, marker = fake_hub
    load_model("someone/cnn-studio-cifar10@v1.0")
    load_model("someone/cnn-studio-cifar10", revision="0123456789abcdef0123456789abcdef01234567")
    load_model("someone/cnn-studio-cifar10@refs/pr/3")
    assert [(c["repo_id"], c["revision"]) for c in calls] == [
        ("someone/cnn-studio-cifar10", "v1.0"),
        ("someone/cnn-studio-cifar10", "0123456789abcdef0123456789abcdef01234567"),
        ("someone/cnn-studio-cifar10", "refs/pr/3")]
    assert not marker.exists()


def test_conflicting_revisions_are_an_error(fake_hub):
    calls, _ = fake_hub
    with pytest.raises(ArtifactError, match="two different revisions"):
        load_model("someone/model@v1", revision="v2")
    assert calls == []


def test_a_revision_for_a_local_folder_is_an_error(release):
    with pytest.raises(ArtifactError, match="a local folder has no revisions"):
        load_model(release[0], revision="v1")


def test_hub_downloads_no_code_or_pickles_and_runs_none(fake_hub):
    calls, marker = fake_hub
    loaded = load_model("someone/model")
    patterns = calls[0]["allow_patterns"]
    assert patterns == RELEASE_PATTERNS
    # Code, pickles and other weight formats are never fetched. (examples/ and tb/ are fetched
    # whole; they are data folders that nothing imports or unpickles.)
    for name in ("modeling.py", "model.py", "pytorch_model.bin", "model.pt", "checkpoint.pt", "model.pkl",
                 "handler.py", "requirements.txt", "model.onnx", "model.ckpt", "model.h5"):
        assert not any(fnmatch.fnmatch(name, p) for p in patterns), name
    assert "trust_remote_code" not in calls[0]
    assert loaded.model is not None
    assert not marker.exists(), "code or a pickle from the repo was executed"


def test_the_loader_never_unpickles():
    """Nothing in models/ calls pickle or torch.load: weights go through safetensors only."""
    root = Path(__file__).resolve().parents[1] / "models"
    offenders = []
    for path in root.glob("*.py"):
        text = path.read_text()
        for needle in (r"torch\.load\(", r"pickle\.loads?\(", r"trust_remote_code", r"(?<![.\w])exec\(",
                       r"(?<![.\w])eval\(", r"import_module\("):
            if re.search(needle, text):
                offenders.append(f"{path.name}: {needle}")
    assert not offenders, offenders


# --- digests: SHA256SUMS written with the release, checked on every load ------------------------

def flip_weight_bytes(path: Path, count: int = 300) -> None:
    """XOR the lowest mantissa byte of `count` float32 values in the middle of the tensor data
    (past the header): the file still parses, every value stays finite, the model answers differently."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")          # tensor data begins after the JSON header
    middle = start + ((len(data) - start) // 2) // 4 * 4     # float32 boundary (data offsets are aligned)
    for k in range(count):
        data[middle + 4 * k] ^= 0xA5                          # little-endian: byte 0 is the mantissa's lowest
    path.write_bytes(bytes(data))


def copy_release(release, tmp_path: Path, name: str = "model") -> Path:
    folder = tmp_path / name
    shutil.copytree(release[0], folder)
    return folder


def test_the_release_records_the_sha256_of_each_file(release):
    good, _ = release
    lines = (good / MANIFEST_FILE).read_text().splitlines()
    expected = {name: hashlib.sha256((good / name).read_bytes()).hexdigest() for name in (CONFIG_FILE, WEIGHTS_FILE)}
    assert lines == [f"{expected[name]}  {name}" for name in sorted(expected)]
    if shutil.which("sha256sum"):   # the standard tool checks a downloaded release the same way
        check = subprocess.run(["sha256sum", "--check", "--strict", MANIFEST_FILE], cwd=good,
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_flipped_bytes_in_the_weights_are_refused_by_name(release, tmp_path):
    folder = copy_release(release, tmp_path)
    flip_weight_bytes(folder / WEIGHTS_FILE)
    # The damage is invisible to the structural checks: the file parses, shapes fit, values are finite...
    state = read_weights(folder / WEIGHTS_FILE, create_model(CFG))
    assert any(not torch.equal(state[k], release[1][k]) for k in state)
    # ...so only the digest catches it.
    message = assert_refused(folder, WEIGHTS_FILE, r"damaged or changed after the run was written \(sha256 "
                                                   r"[0-9a-f]{12}\.\.\., SHA256SUMS records [0-9a-f]{12}\.\.\.\); refused")
    assert message.startswith(str(folder / WEIGHTS_FILE))


@pytest.mark.parametrize("name, edit", [
    (CONFIG_FILE, lambda text: text.replace('"airplane"', '"aeroplane"')),   # valid JSON, valid config
    ("metrics.json", lambda text: text.replace("0.1", "0.9")),
])
def test_an_edited_listed_file_is_refused_by_name(release, tmp_path, name, edit):
    folder = copy_release(release, tmp_path)
    if name == "metrics.json":   # a release with more files: every listed one is checked
        (folder / name).write_text('{"accuracy": 0.1}')
        from models.artifact import write_manifest
        write_manifest(folder)
        load_model(folder)
    text = (folder / name).read_text()
    assert edit(text) != text
    (folder / name).write_text(edit(text))
    assert_refused(folder, name, "damaged or changed after the run was written")


def test_a_digest_list_that_points_outside_the_folder_is_refused(release, tmp_path):
    folder = copy_release(release, tmp_path)
    with open(folder / MANIFEST_FILE, "a") as f:
        f.write(f"{'0' * 64}  ../outside.txt\n")
    assert_refused(folder, MANIFEST_FILE, r"line 3 is not '<sha256>  <file in this folder>'")


def test_a_digest_list_without_the_weights_is_refused(release, tmp_path):
    folder = copy_release(release, tmp_path)
    lines = [l for l in (folder / MANIFEST_FILE).read_text().splitlines() if not l.endswith(WEIGHTS_FILE)]
    (folder / MANIFEST_FILE).write_text("\n".join(lines) + "\n")
    assert_refused(folder, MANIFEST_FILE, "no digest for model.safetensors")


def test_a_release_from_before_digests_loads_with_a_warning(release, tmp_path, caplog):
    folder = copy_release(release, tmp_path)
    (folder / MANIFEST_FILE).unlink()
    with caplog.at_level("WARNING", logger="models.artifact"):
        load_model(folder)
    assert "loading it unverified" in caplog.text


def test_a_damaged_hub_snapshot_is_refused(release, tmp_path, monkeypatch):
    """A Hub snapshot as huggingface_hub lays it out (file names are symlinks into blobs/)."""
    good, _ = release
    repo = tmp_path / "models--someone--cnn-studio-cifar10"
    blobs, snap = repo / "blobs", repo / "snapshots" / "0123abc"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE):
        blob = blobs / hashlib.sha256((good / name).read_bytes()).hexdigest()
        shutil.copyfile(good / name, blob)
        (snap / name).symlink_to(blob)
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kwargs: str(snap))
    load_model("someone/cnn-studio-cifar10")        # intact: loads
    flip_weight_bytes((snap / WEIGHTS_FILE).resolve())
    with pytest.raises(ArtifactError, match=rf"{re.escape(str(snap / WEIGHTS_FILE))}: damaged"):
        load_model("someone/cnn-studio-cifar10")


def test_the_app_lists_a_damaged_model_as_unavailable_with_the_reason(release, tmp_path):
    from ui.catalog import Catalog
    runs = tmp_path / "runs"
    torch.manual_seed(0)
    model = create_model(CFG)
    for name, created in (("older", "2026-01-01T00:00:00+00:00"), ("newer", "2026-02-01T00:00:00+00:00")):
        save_release(runs / "cifar10" / name, model, {**CFG.to_dict(), "task": "cifar10", "variant": "baseline",
                                                      "created": created})
    flip_weight_bytes(runs / "cifar10" / "newer" / WEIGHTS_FILE)
    catalog = Catalog.from_sources(runs)
    broken, served = catalog.entry("cifar10/newer"), catalog.entry("cifar10/older")
    assert not broken.available and broken.loaded is None
    assert "model.safetensors: damaged or changed after the run was written" in broken.status()
    assert served.available and catalog.default_key("cifar10") == "cifar10/older"


# --- file modes -------------------------------------------------------------------------------

@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_release_files_are_readable_like_every_other_file(tmp_path, umask_022):
    folder = tmp_path / "run"
    save_release(folder, create_model(CFG), {**CFG.to_dict(), "task": "cifar10"})
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {CONFIG_FILE: 0o644, WEIGHTS_FILE: 0o644, MANIFEST_FILE: 0o644}


def test_atomic_write_gives_the_usual_mode_even_when_the_writer_recreates_the_file(tmp_path):
    from models.atomic import atomic_write

    def recreate(path: Path) -> None:          # what safetensors' save_file does to the temporary file
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"data")
        os.close(fd)

    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.bin", recreate)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640      # 0666 minus the umask
