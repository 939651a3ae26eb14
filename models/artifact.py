"""The release artifact: a folder with config.json + model.safetensors (+ card, curves, ...).

A run directory and a Hub model repo have the same files, so one loader serves both:
`load_model("runs/mnist/2026...")` or `load_model("user/cnn-studio-mnist@v1")`.
Model files are data, never code: weights are safetensors only, loaded strictly, and
checked for shapes and finite values before they reach a model.

SHA256SUMS (the format of `sha256sum`, so `sha256sum -c SHA256SUMS` checks a download too)
records the digest of every release file when the release is written; `load_model` verifies
each listed file before using any of them, so a damaged file is refused by name instead of
served. The card (README.md) is not listed: it is rendered from the listed files, and again
for each Hub repo it is pushed to.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from models.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from models.jsonfile import JSONFileError, read_json, run_file
from models.registry import ModelConfig, create_model

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "SHA256SUMS"
CARD_FILE = "README.md"
# What a Hub model repo holds: the run directory without checkpoint.pt (resume state only).
GALLERY_DIR = "see_why"   # the validation images the See why galleries show (misclassified, top losses)
RELEASE_PATTERNS = [CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE, CARD_FILE, "curves.png", "history.json",
                    "metrics.json", "predictions.json", "examples/*.png", "examples/index.json",
                    f"{GALLERY_DIR}/*.png", f"{GALLERY_DIR}/index.json", "tb/events.out.tfevents.*"]
MAX_CONFIG_BYTES = 1_000_000
MAX_MANIFEST_BYTES = 1_000_000
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")     # the Hub's lengths: 96 each
# A branch, tag or commit as the Hub names them: no "..", no leading "/" or "\\", at most 255 characters.
_REVISION = re.compile(r"^(?!.*\.\.)[\w.-][\w./-]{0,254}$")
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](\S(?:.*\S)?)$")
log = logging.getLogger(__name__)

# progress(fraction done in [0, 1], what is happening): how a slow load (a Hub download, digests
# of large weights) tells its caller where it is; the app passes Gradio's progress bar.
Progress = Callable[[float, str], None]


class ArtifactError(Exception):
    """A model folder or Hub repo that cannot be used; the message names the file and problem."""


@dataclass
class LoadedModel:
    model: nn.Module
    config: ModelConfig
    info: dict                        # the whole config.json (task, recipe, versions, ...)
    root: Path                        # local folder holding the files (run dir or Hub snapshot)
    source: str                       # what the user asked for: a path or repo_id[@revision]


def save_release(run_dir: str | os.PathLike, model: nn.Module, config: dict) -> None:
    """Write config.json and model.safetensors into `run_dir`, each atomically, then SHA256SUMS.

    `config` must contain the ModelConfig keys; anything else (task, recipe, versions)
    is kept as written. SHA256SUMS lists every release file in `run_dir` at that moment:
    write the other release files (metrics, curves, examples, ...) first.
    """
    ModelConfig.from_dict(config)  # refuse to write a config that could not be loaded
    run_dir = Path(run_dir)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    # Serialised in memory and written by Python, so a full disk raises OSError (save_file wrote to
    # /dev/full without any error when tried).
    atomic_write_bytes(run_dir / WEIGHTS_FILE, save(state, metadata={"format": "pt"}))
    atomic_write_json(run_dir / CONFIG_FILE, config)
    write_manifest(run_dir)


# --- digests of the release files (SHA256SUMS) ----------------------------------------------

def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def listed_files(run_dir: Path) -> list[str]:
    """The release files that SHA256SUMS covers: RELEASE_PATTERNS except the card and itself."""
    return sorted({p.relative_to(run_dir).as_posix()
                   for pattern in RELEASE_PATTERNS if pattern not in (MANIFEST_FILE, CARD_FILE)
                   for p in run_dir.glob(pattern) if p.is_file() and not p.is_symlink()})


def write_manifest(run_dir: str | os.PathLike) -> Path:
    """Record the sha256 of every release file in `run_dir` (atomically, in `sha256sum` format)."""
    run_dir = Path(run_dir)
    lines = [f"{file_sha256(run_dir / name)}  {name}\n" for name in listed_files(run_dir)]
    return atomic_write_text(run_dir / MANIFEST_FILE, "".join(lines))


def record_digest(run_dir: str | os.PathLike, name: str) -> None:
    """After rewriting one release file of a finished run (evaluate --predictions), record its new digest."""
    run_dir = Path(run_dir)
    digests = read_manifest(run_dir)
    if digests is None:
        return                           # a run from before digests were recorded: nothing to keep in step
    digests[name] = file_sha256(run_dir / name)
    atomic_write_text(run_dir / MANIFEST_FILE, "".join(f"{d}  {n}\n" for n, d in sorted(digests.items())))


def read_manifest(root: Path) -> dict[str, str] | None:
    """{relative name: sha256} from root/SHA256SUMS; None when the folder has none (older releases)."""
    path = run_file(root, MANIFEST_FILE)
    if path is None:
        return None
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{path}: too large for a digest list ({path.stat().st_size:,} bytes)")
    digests = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not a readable digest list ({e})") from e
    for number, line in enumerate(text.splitlines(), 1):
        found = _MANIFEST_LINE.match(line)
        name = found.group(2) if found else ""
        if not found or name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise ArtifactError(f"{path}: line {number} is not '<sha256>  <file in this folder>'")
        digests[name] = found.group(1)
    return digests


def verify_release(root: Path, progress: Progress) -> bool:
    """Check every file SHA256SUMS lists against its digest; False when there is no SHA256SUMS.

    The weights and the config must be listed; other listed files are checked when present
    (a run folder may have lost its tb/ to save space; that is not damage to what is served).
    `progress` hears the fraction of listed files checked so far, before each file.
    """
    digests = read_manifest(root)
    if digests is None:
        return False
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in digests:
            raise ArtifactError(f"{root / MANIFEST_FILE}: no digest for {required}; the release is incomplete")
    for number, (name, expected) in enumerate(digests.items()):
        progress(number / len(digests), f"checking sha256 of {name} ({number + 1} of {len(digests)})")
        if name != CONFIG_FILE and name != WEIGHTS_FILE and run_file(root, name) is None:
            continue
        path = release_file(root, name)
        actual = file_sha256(path)
        if actual != expected:
            raise ArtifactError(f"{path}: damaged or changed after the run was written (sha256 {actual[:12]}..., "
                                f"{MANIFEST_FILE} records {expected[:12]}...); refused")
    return True


def is_hub_id(source: str) -> bool:
    repo, at, revision = source.partition("@")
    return bool(_REPO_ID.match(repo)) and (not at or bool(_REVISION.match(revision))) and not os.path.exists(source)


def resolve_source(source: str | os.PathLike, revision: str | None = None) -> Path:
    """A local folder for `source`: the folder itself, or a Hub snapshot (cache, HF_HUB_OFFLINE aware).

    A download shows huggingface_hub's own tqdm bars (a Gradio progress with track_tqdm=True follows them)."""
    text = str(source)
    local = Path(text)
    if os.path.isdir(text):
        if revision:
            raise ArtifactError(f"{text}: a local folder has no revisions (revision={revision!r} is for Hub repos)")
        return local
    if not is_hub_id(text):
        raise ArtifactError(f"{text}: no such model folder, and not a Hub repo id (user/name[@revision])")
    repo_id, _, rev = text.partition("@")
    if revision and rev and revision != rev:
        raise ArtifactError(f"{text}: two different revisions asked for ({rev!r} in the id, {revision!r} given)")
    revision = revision or rev or None
    if revision is not None and not _REVISION.match(revision):
        raise ArtifactError(f"{text[:120]}: {revision[:60]!r} is not a Hub revision (a branch, tag or commit)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, allow_patterns=RELEASE_PATTERNS))
    except LocalEntryNotFoundError as e:
        raise ArtifactError(f"{text}: not in the local Hub cache and the Hub cannot be reached "
                            f"(offline or no network): {e}") from e
    except RepositoryNotFoundError as e:
        raise ArtifactError(f"{text}: no such Hub repo, or it is private and no token was given") from e
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ArtifactError(f"{text}: download failed: {e}") from e
    # A real models--<user>--<name>/snapshots/<commit>/ folder: a damaged or hostile refs/ file could name any.
    repo = snapshot.parent.parent
    if snapshot.parent.name != "snapshots" or not repo.name.startswith("models--") or snapshot.is_symlink() \
            or snapshot.resolve().parent != repo.resolve() / "snapshots":
        raise ArtifactError(f"{text[:120]}: the Hub cache names a folder outside the repo's snapshots; refused")
    return snapshot


def release_file(root: Path, name: str) -> Path:
    """run_file(root, name), or an ArtifactError naming the file."""
    path = run_file(root, name)
    if path is None:
        raise ArtifactError(f"{root / name}: missing, or a link out of the model folder")
    return path


def read_config(path: Path) -> tuple[dict, ModelConfig]:
    """config.json at `path` (a file: release_file found it) and the ModelConfig it holds."""
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ArtifactError(f"{path}: too large for a config ({path.stat().st_size:,} bytes)")
    try:
        info = read_json(path)
    except JSONFileError as e:
        raise ArtifactError(str(e)) from e
    if not isinstance(info, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    try:
        return info, ModelConfig.from_dict(info)
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{path}: {e}") from e


def read_weights(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """Parse `path` (a file: release_file found it) with safetensors and check it against `model`: same keys,
    shapes, finite."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path}: not a valid safetensors file ({e})") from e
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ArtifactError(f"{path}: tensors do not match the architecture in config.json "
                            f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''})")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ArtifactError(f"{path}: {name} has shape {tuple(tensor.shape)}, "
                                f"the architecture needs {tuple(expected[name].shape)}")
        if tensor.dtype != expected[name].dtype:
            raise ArtifactError(f"{path}: {name} is {str(tensor.dtype).removeprefix('torch.')}, "
                                f"the architecture needs {str(expected[name].dtype).removeprefix('torch.')}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ArtifactError(f"{path}: {name} contains NaN or infinite values")
    return state


# Shares of a load's progress bar: fetching the files, checking their digests, building the model.
FETCHED, VERIFIED = 0.4, 0.8


def load_model(source: str | os.PathLike, *, revision: str | None = None,
               device: str | torch.device = "cpu", progress: Progress | None = None) -> LoadedModel:
    """Load a run directory or Hub repo: config.json, then model.safetensors, strictly, in eval mode.

    `progress` (see Progress) hears each stage: fetching (a Hub download), checking digests
    file by file, reading the weights, done."""
    progress = progress or (lambda fraction, what: None)
    progress(0.0, f"fetching {source}" + (" from the Hub" if is_hub_id(str(source)) else ""))
    root = resolve_source(source, revision)

    def checking(fraction: float, what: str) -> None:
        progress(FETCHED + (VERIFIED - FETCHED) * fraction, what)

    if not verify_release(root, checking):
        log.warning("%s: no %s, so its files cannot be checked for damage (written before digests were "
                    "recorded); loading it unverified", root, MANIFEST_FILE)
    progress(VERIFIED, f"reading {CONFIG_FILE} and {WEIGHTS_FILE}")
    info, cfg = read_config(release_file(root, CONFIG_FILE))
    try:
        model = create_model(cfg)
    except (ValueError, TypeError) as e:
        raise ArtifactError(f"{root / CONFIG_FILE}: {e}") from e
    state = read_weights(release_file(root, WEIGHTS_FILE), model)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    progress(1.0, f"loaded {source}")
    return LoadedModel(model=model, config=cfg, info=info, root=root, source=str(source))
