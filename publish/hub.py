"""Share runs on the Hugging Face Hub and build the Space that demos them.

    python -m publish.hub push RUN_DIR --repo-id USER/NAME [--private] [--revision BRANCH] [--dry-run]
    python -m publish.hub space OUT_DIR --models REPO_ID ... [--space-id USER/NAME] [--dry-run]

`push` uploads a run directory's release files (models.artifact.RELEASE_PATTERNS: config,
weights, card, curves, history, metrics, predictions, examples, TensorBoard events) in one
commit, never checkpoint.pt. The card is rendered again for the repo, so its usage snippet
says `load_model("USER/NAME")`. Files of an earlier push that this run does not have
(old examples, old event files) are deleted in the same commit.

`space` writes a folder that is a ready Gradio Space: app.py and the packages it imports
(ui/, models/, cards/, assets/; not training/), requirements.txt, and a README whose YAML
header configures the Space (sdk, sdk_version, models, preload_from_hub, ...). In the Space
the app loads the listed models from the Hub (environment variable CNN_STUDIO_HUB_MODELS).

The token comes from HF_TOKEN or `hf auth login` (huggingface_hub.get_token()). Errors are
one line on stderr and exit status 1. `--dry-run` never touches the network.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceCard, SpaceCardData, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from models.artifact import CONFIG_FILE, RELEASE_PATTERNS, ArtifactError, load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
CARD_FILE = "README.md"
# Never uploaded, whatever the patterns say: resume state, temporary files of atomic writes.
NEVER_UPLOAD = ["checkpoint.pt", "*.pt", "*.pth", ".*", "*/.*", "*.tmp", "__pycache__/*"]

HUB_MODELS_ENV = "CNN_STUDIO_HUB_MODELS"   # read by ui/catalog.py (space- or comma-separated ids)
SPACE_CODE = ["app.py", "ui", "models", "cards", "assets"]   # what the Space runs; never training/
SPACE_FILES = SPACE_CODE + ["requirements.txt", "README.md"]
SPACE_IGNORE = ["__pycache__", "*.pyc", ".*"]
# Left behind by running the Space folder locally; never uploaded.
SPACE_UPLOAD_IGNORE = ["*__pycache__*", "*.pyc", ".*", "*/.*", "runs/*", "flagged/*"]
PRELOAD_FILES = ["config.json", "model.safetensors", "README.md", "history.json", "metrics.json"]
LOCAL_PACKAGES = {"app", "ui", "models", "cards", "assets", "training", "publish", "analysis", "tests"}
# Installed by the Space itself from the README's sdk / sdk_version.
PROVIDED_BY_SPACE = {"gradio"}


class HubError(Exception):
    """Something the user must fix; the message is one line."""


# --------------------------------------------------------------------------- push


def release_files(run_dir: str | os.PathLike) -> list[str]:
    """Paths (relative, POSIX) of the run's files that belong in a Hub repo, sorted.

    Matched the way huggingface_hub matches allow_patterns (snapshot_download uses the same
    RELEASE_PATTERNS to download), minus NEVER_UPLOAD.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise HubError(f"{run_dir}: no such run directory")
    every = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    return sorted(filter_repo_objects(every, allow_patterns=RELEASE_PATTERNS, ignore_patterns=NEVER_UPLOAD))


def left_out_files(run_dir: str | os.PathLike) -> list[str]:
    """The run's files that are not uploaded (checkpoint.pt, run_config.json, ...)."""
    run_dir = Path(run_dir)
    keep = set(release_files(run_dir))
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                  if p.is_file() and p.relative_to(run_dir).as_posix() not in keep)


def release_operations(run_dir: str | os.PathLike, *, repo_id: str | None = None,
                       regenerate_card: bool = True) -> list[CommitOperationAdd]:
    """One CommitOperationAdd per release file, as `create_commit` uploads them.

    The weights are checked first (config.json + model.safetensors load strictly). With
    `repo_id` and `regenerate_card`, README.md is the card rendered for that repo (its usage
    snippet loads `repo_id`); otherwise the run's README.md is uploaded as it is.
    """
    run_dir = Path(run_dir)
    files = release_files(run_dir)
    for required in ("config.json", "model.safetensors"):
        if required not in files:
            raise HubError(f"{run_dir / required}: missing; is this a finished run directory?")
    try:
        load_model(run_dir)
    except ArtifactError as e:
        raise HubError(f"not a valid release: {' '.join(str(e).split())}") from e
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name))
           for name in files if not (name == CARD_FILE and repo_id and regenerate_card)]
    if repo_id and regenerate_card:
        from cards import CardError, read_facts, render_card
        try:
            card = render_card(read_facts(run_dir, source=repo_id))
        except CardError as e:
            raise HubError(f"cannot render the model card: {e}") from e
        ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=card.encode("utf-8")))
    return sorted(ops, key=lambda op: op.path_in_repo)


def stale_operations(existing: list[str], ops: list[CommitOperationAdd]) -> list[CommitOperationDelete]:
    """Deletes for release-pattern files already in the repo that this push does not replace."""
    new = {op.path_in_repo for op in ops}
    stale = [p for p in filter_repo_objects(existing, allow_patterns=RELEASE_PATTERNS) if p not in new]
    return [CommitOperationDelete(path_in_repo=p) for p in sorted(stale)]


def describe_operations(ops: list[CommitOperationAdd]) -> list[str]:
    """Lines 'size  path' for each file, then the total."""
    width = max([len(f"{op.upload_info.size:,}") for op in ops] + [5])
    lines = [f"  {op.upload_info.size:>{width},}  {op.path_in_repo}" for op in ops]
    lines.append(f"  {sum(op.upload_info.size for op in ops):>{width},}  total, {len(ops)} files")
    return lines


def require_token(token: str | None = None) -> str:
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


def push(run_dir: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, regenerate_card: bool = True, dry_run: bool = False,
         out=None) -> str | None:
    """Upload the release files of `run_dir` to the model repo `repo_id`; the commit URL (None on dry run)."""
    out = out or sys.stdout
    check_repo_id(repo_id)
    source = f"{repo_id}@{revision}" if revision else repo_id
    ops = release_operations(run_dir, repo_id=source, regenerate_card=regenerate_card)
    where = f"{repo_id} (model repo{', private' if private else ''}, branch {revision or 'main'})"
    if dry_run:
        print(f"dry run: would upload to {where}:", file=out)
        print("\n".join(describe_operations(ops)), file=out)
        left_out = left_out_files(run_dir)
        if left_out:
            print(f"not uploaded: {', '.join(left_out)}", file=out)
        return None
    api = HfApi(token=require_token(token))
    config = json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    message = f"CNN Studio: {config.get('task', 'model')} ({config.get('variant', 'baseline')}), " \
              f"run {config.get('run_name', Path(run_dir).name)}"
    with hub_errors(f"upload to {repo_id}"):
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        deletes = stale_operations(api.list_repo_files(repo_id, revision=revision), ops)
        info = api.create_commit(repo_id, operations=[*ops, *deletes], commit_message=message,
                                 revision=revision, repo_type="model")
    print(f"uploaded to {where}:", file=out)
    print("\n".join(describe_operations(ops)), file=out)
    if deletes:
        print(f"deleted from the repo (not in this run): {', '.join(d.path_in_repo for d in deletes)}", file=out)
    url = getattr(info, "commit_url", None) or str(info)
    print(url, file=out)
    return url


class hub_errors:
    """Turn what the Hub or the network raises into a one-line HubError."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, OfflineModeIsEnabled):
            raise HubError(f"{self.what}: HF_HUB_OFFLINE is set; unset it to reach the Hub") from exc
        if isinstance(exc, HfHubHTTPError):
            status = getattr(getattr(exc, "response", None), "status_code", None)
            lines = str(exc).strip().splitlines()
            detail = getattr(exc, "server_message", None) or (lines[0] if lines else type(exc).__name__)
            hint = {401: " (is the token valid?)", 403: " (does the token have write access here?)"}
            raise HubError(f"{self.what} refused{f' (HTTP {status})' if status else ''}: "
                           f"{' '.join(str(detail).split())}{hint.get(status, '')}") from exc
        transport = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2")
        if isinstance(exc, (ConnectionError, TimeoutError)) or transport:
            raise HubError(f"{self.what} failed: cannot reach the Hub ({type(exc).__name__}: "
                           f"{' '.join(str(exc).split()) or 'no details'})") from exc
        return False


def check_repo_id(repo_id: str) -> None:
    if not _looks_like_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a repo id; use USER/NAME (a branch goes in --revision)")


def _looks_like_repo_id(text: str) -> bool:
    if text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


# --------------------------------------------------------------------------- Space


@dataclass
class SpacePlan:
    """What `space` writes: files copied from the repo, and files generated."""
    copies: list[tuple[Path, str]]        # (source file, path in the Space)
    generated: dict[str, str]             # path in the Space -> text
    warnings: list[str]


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    repo_id, _, revision = ref.partition("@")
    if not _looks_like_repo_id(repo_id):
        raise HubError(f"--models {ref!r}: expected a Hub repo id USER/NAME[@revision]")
    return repo_id, revision or None


def space_code_files(root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(file, relative path) for app.py and every file under ui/, models/, cards/, assets/."""
    app = root / "app.py"
    if not app.is_file():
        raise HubError(f"{app}: missing; the Space runs the CNN Studio app")
    out = []
    for name in SPACE_CODE:
        path = root / name
        if path.is_file():
            out.append((path, name))
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                rel = p.relative_to(root)
                if p.is_file() and not any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in SPACE_IGNORE):
                    out.append((p, rel.as_posix()))
    return out


def imported_modules(files: list[tuple[Path, str]]) -> dict[str, set[str]]:
    """Top-level module -> the Space files that import it (any import, also inside functions)."""
    found: dict[str, set[str]] = {}
    for path, rel in files:
        if not rel.endswith(".py"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as e:
            raise HubError(f"{path}: does not parse ({e.msg}, line {e.lineno})") from e
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(rel)
    return found


def space_requirements(modules: set[str], root: Path = REPO_ROOT) -> list[str]:
    """requirements.txt lines for the third-party modules the Space code imports.

    Each distribution keeps the project's requirements.txt line when it has one, else
    `name>=X.Y` of the installed version. Gradio is left out: the Space installs the version
    in the README's sdk_version. Test-only packages never appear (tests are not scanned).
    """
    by_module = metadata.packages_distributions()
    project = _project_requirements(root / "requirements.txt")
    dists: list[str] = []
    for module in sorted(modules):
        if module in sys.stdlib_module_names or module in LOCAL_PACKAGES or module == "__future__":
            continue
        for dist in by_module.get(module, [module]):
            if dist not in dists:
                dists.append(dist)
    lines = []
    for dist in sorted(dists, key=str.lower):
        key = _norm(dist)
        if key in PROVIDED_BY_SPACE or key in {_norm(line) for line in lines}:
            continue
        if key in project:
            lines.append(project[key])
            continue
        try:
            version = metadata.version(dist).split("+")[0]
        except metadata.PackageNotFoundError:
            lines.append(dist)
            continue
        lines.append(f"{dist}>={'.'.join(version.split('.')[:2])}")
    return lines


def _project_requirements(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out[_norm(line)] = line
    return out


def _norm(requirement: str) -> str:
    name = requirement
    for sep in "<>=!~;[ ":
        name = name.split(sep, 1)[0]
    return name.strip().lower().replace("_", "-")


def preload_entry(ref: str) -> str:
    """A `preload_from_hub` line: the whole repo (= its release files, as `push` uploads them),
    or, for a commit, the files the app needs at that commit."""
    repo_id, revision = parse_model_ref(ref)
    if revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        return f"{repo_id} {','.join(PRELOAD_FILES)} {revision}"
    # A branch or tag cannot be pinned here (the field takes a commit): the app fetches that
    # revision at start; the default branch is preloaded meanwhile.
    return repo_id


def space_readme(models: list[str], *, title: str = "CNN Studio") -> str:
    import gradio
    data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=gradio.__version__, app_file="app.py", license="mit",
        models=list(dict.fromkeys(parse_model_ref(m)[0] for m in models)),
        tags=["image-classification", "cnn-studio"],
        emoji="🧠", colorFrom="indigo", colorTo="pink", pinned=False,
        short_description="VGG19-BN & ResNet50: CIFAR-10, MNIST, cats vs dogs",
        preload_from_hub=[preload_entry(m) for m in models],
    )
    model_lines = "\n".join(f"- [`{m}`](https://huggingface.co/{parse_model_ref(m)[0]})" for m in models)
    ids = " ".join(models)
    body = f"""
# {title}

Classic image classifiers trained with CNN Studio, side by side: VGG19-BN on CIFAR-10 and
MNIST, ResNet50 for cats vs dogs with and without Random Erasing. Upload or draw an image
and see the class probabilities; the tabs also show augmentations, the architectures,
training curves and each model's card.

Models served (each repo's `README.md` is its model card, with the measured accuracy):

{model_lines}

The app reads the list from the Space variable `{HUB_MODELS_ENV}` (space-separated repo
ids, set by `python -m publish.hub space ... --space-id`). To run this folder locally:

```bash
pip install gradio=={gradio.__version__} -r requirements.txt
{HUB_MODELS_ENV}="{ids}" python app.py
```
"""
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}")
    return str(card).rstrip("\n") + "\n"


def plan_space(models: list[str], *, root: Path = REPO_ROOT, title: str = "CNN Studio") -> SpacePlan:
    if not models:
        raise HubError("--models needs at least one Hub repo id")
    for m in models:
        parse_model_ref(m)
    copies = space_code_files(root)
    modules = imported_modules(copies)
    warnings = []
    if "training" in modules:
        warnings.append("the Space has no training/ package, but these files import it (they must cope "
                        f"with its absence): {', '.join(sorted(modules['training']))}")
    generated = {
        "requirements.txt": "\n".join(space_requirements(set(modules), root)) + "\n",
        "README.md": space_readme(models, title=title),
    }
    return SpacePlan(copies=copies, generated=generated, warnings=warnings)


def write_space(out_dir: str | os.PathLike, plan: SpacePlan, *, force: bool = False) -> Path:
    """Write the Space folder. An existing folder must be empty, or an earlier Space (with --force)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise HubError(f"{out}: not empty; choose a new folder or pass --force to replace the Space files")
        for name in SPACE_FILES:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for src, rel in plan.copies:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    for rel, text in plan.generated.items():
        (out / rel).write_text(text, encoding="utf-8")
    return out


def upload_space(out_dir: str | os.PathLike, space_id: str, models: list[str], *, private: bool = False,
                 token: str | None = None, out=None) -> str:
    """Create (or update) the Gradio Space, set its model list variable, upload the folder."""
    out = out or sys.stdout
    check_repo_id(space_id)
    api = HfApi(token=require_token(token))
    value = " ".join(models)
    with hub_errors(f"upload of the Space {space_id}"):
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                        space_variables=[{"key": HUB_MODELS_ENV, "value": value}])
        # create_repo sets variables only for a new Space; this sets them for an existing one too
        api.add_space_variable(space_id, HUB_MODELS_ENV, value,
                               description="Hub model repos the CNN Studio app serves")
        info = api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(out_dir),
                                 commit_message="CNN Studio Space", ignore_patterns=SPACE_UPLOAD_IGNORE)
    url = getattr(info, "commit_url", None) or str(info)
    print(f"uploaded the Space to https://huggingface.co/spaces/{space_id}\n{url}", file=out)
    return url


def space(out_dir: str | os.PathLike, models: list[str], *, space_id: str | None = None, private: bool = False,
          dry_run: bool = False, force: bool = False, token: str | None = None, out=None) -> Path | None:
    out = out or sys.stdout
    plan = plan_space(models)
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if dry_run:
        print(f"dry run: would write a Space to {out_dir}"
              + (f" and upload it to {space_id}" if space_id else "") + ":", file=out)
        sizes = [(rel, src.stat().st_size) for src, rel in plan.copies]
        sizes += [(rel, len(text.encode("utf-8"))) for rel, text in plan.generated.items()]
        width = max(len(f"{s:,}") for _, s in sizes)
        for rel, size in sorted(sizes):
            print(f"  {size:>{width},}  {rel}", file=out)
        print(f"{HUB_MODELS_ENV}={' '.join(models)}", file=out)
        return None
    folder = write_space(out_dir, plan, force=force)
    print(f"wrote the Space to {folder} ({len(plan.copies) + len(plan.generated)} files)", file=out)
    if space_id:
        upload_space(folder, space_id, models, private=private, token=token, out=out)
    else:
        print(f"run it locally: cd {folder} && {HUB_MODELS_ENV}=\"{' '.join(models)}\" python app.py", file=out)
    return folder


# --------------------------------------------------------------------------- CLI


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m publish.hub",
                                description="Share CNN Studio runs on the Hugging Face Hub.")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("push", help="upload a run directory's release files to a model repo")
    pp.add_argument("run_dir", metavar="RUN_DIR")
    pp.add_argument("--repo-id", required=True, metavar="USER/NAME")
    pp.add_argument("--private", action="store_true", help="create the repo private (if it does not exist)")
    pp.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if needed)")
    pp.add_argument("--keep-card", action="store_true",
                    help="upload README.md as it is (default: render the card again for this repo id)")
    pp.add_argument("--dry-run", action="store_true", help="list the files and sizes; touch no network")
    sp = sub.add_parser("space", help="write (and optionally upload) a Gradio Space serving Hub models")
    sp.add_argument("out_dir", metavar="OUT_DIR")
    sp.add_argument("--models", nargs="+", required=True, metavar="REPO_ID",
                    help="Hub model repos (USER/NAME[@revision]) the Space serves")
    sp.add_argument("--space-id", metavar="USER/NAME", help="upload the folder to this Space")
    sp.add_argument("--private", action="store_true", help="create the Space private")
    sp.add_argument("--force", action="store_true", help="replace the Space files in a non-empty OUT_DIR")
    sp.add_argument("--dry-run", action="store_true", help="list what would be written; write and upload nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        if args.command == "push":
            push(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                 regenerate_card=not args.keep_card, dry_run=args.dry_run)
        else:
            space(args.out_dir, args.models, space_id=args.space_id, private=args.private,
                  dry_run=args.dry_run, force=args.force)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
