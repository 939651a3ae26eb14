"""The Gradio Space that demos Hub models: a folder holding only what `python app.py` runs.

    python -m publish.hub space OUT_DIR --models REPO_ID ... [--space-id USER/NAME] [--dry-run]

It holds app.py and every local module it imports (followed through every import statement,
also inside functions), the data files the app reads (SPACE_DATA), the LICENSE its README
declares, requirements.txt (the project's own lines for what that code imports, torch from
PyTorch's CPU index) and README.md, whose header configures the Space and lists its models:
the app reads them from there when it starts, however the folder is uploaded. docs/hub.md.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import tempfile
from importlib import metadata
from modulefinder import ModuleFinder
from pathlib import Path

from huggingface_hub import HfApi, SpaceCard, SpaceCardData

from cards.card import LICENSE, LICENSE_FILE
from models.artifact import RELEASE_PATTERNS
from models.tasks import HUB_MODELS_ENV
from publish.common import (REPO_ROOT, HubError, check_repo_id, describe, hub_errors, looks_like_repo_id,
                            require_token, user_agent)

ENTRY = "app.py"
# Read by the app at run time: the example images (ui/common.py), the page's CSS and script (ui/shell.py).
SPACE_DATA = ["assets/*.png", "assets/app.css", "assets/app.js"]
# The Python the Space runs (README python_version); the platform's default is older (3.10),
# and pandas 3 / numpy 2.3+ need 3.11. tests/test_space.py resolves requirements.txt for it.
SPACE_PYTHON = "3.11"
# PyTorch's CPU-only wheels. An extra index (not --index-url) so every other package still
# comes from PyPI; pip prefers torch "X.Y.Z+cpu" here over PyPI's CUDA "X.Y.Z" (a local version
# label sorts after the bare version, PEP 440). On GPU hardware, drop this line (docs/hub.md).
CPU_INDEX_LINE = "--extra-index-url https://download.pytorch.org/whl/cpu"
# Left behind by running the Space folder locally; never uploaded.
SPACE_UPLOAD_IGNORE = ["*__pycache__*", "*.pyc", ".*", "*/.*", "runs/*", "flagged/*"]
# A `preload_from_hub` entry pinned to a commit must name its files (Spaces configuration
# reference): the release files the app reads whose names are fixed.
PRELOAD_FILES = [p for p in RELEASE_PATTERNS if "*" not in p]
PROVIDED_BY_SPACE = {"gradio"}   # installed by the platform from the README's sdk / sdk_version
COMMIT = re.compile(r"[0-9a-f]{40}")
README_BODY = Path(__file__).with_name("space_readme.md").read_text(encoding="utf-8")   # the README's prose


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """USER/NAME or USER/NAME@COMMIT -> (repo id, commit or None).

    A branch or tag is refused: the README can pin a model only to a commit (`preload_from_hub`
    takes a commit, `models` takes bare ids), and a Space must serve what its README says."""
    repo_id, _, revision = ref.partition("@")
    if not looks_like_repo_id(repo_id):
        raise HubError(f"--models {ref!r}: expected a Hub repo id USER/NAME[@COMMIT]")
    if revision and not COMMIT.fullmatch(revision):
        raise HubError(f"--models {ref!r}: a Space's README pins a model to a commit (40 hex digits), not to a "
                       f"branch or tag; use the commit {revision!r} points to, or USER/NAME for the main branch")
    return repo_id, revision or None


# --------------------------------------------------------------------------- what the app runs


def local_import_closure(root: Path = REPO_ROOT, entry: str = ENTRY) -> tuple[list[str], dict[str, set[str]]]:
    """The repo's .py files that `entry` imports, directly or through each other (also inside functions),
    with entry; and every other module they import: {top-level name: the files importing it}.

    stdlib's modulefinder follows the imports, looking only inside `root`: what it cannot find there
    comes from elsewhere (the standard library or a distribution)."""
    if not (root / entry).is_file():
        raise HubError(f"{root / entry}: missing; the Space runs the CNN Studio app")
    finder = ModuleFinder(path=[str(root)])
    try:
        finder.run_script(str(root / entry))
        files = {m.__name__: Path(m.__file__).relative_to(root).as_posix()
                 for m in finder.modules.values() if m.__file__}
        for name in finder.badmodules:   # a repo module missed only when it does not compile: say where
            path = next((c for c in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py")
                         if (root / c).is_file()), None)
            if path:
                compile((root / path).read_text(encoding="utf-8"), str(root / path), "exec")
    except SyntaxError as e:
        raise HubError(f"{e.filename}: does not parse ({e.msg}, line {e.lineno})") from e
    imported: dict[str, set[str]] = {}
    for name, callers in finder.badmodules.items():
        imported.setdefault(name.split(".")[0], set()).update(files.get(c, c) for c in callers)
    return sorted(files.values()), imported


# --------------------------------------------------------------------------- requirements


def norm_name(requirement: str) -> str:
    """The normalised distribution name of a requirement line (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ #]", requirement, maxsplit=1)[0].strip()).lower()


_distributions_by_module = functools.cache(metadata.packages_distributions)   # reads all installed metadata: once


def space_requirements(imported: dict[str, set[str]], root: Path = REPO_ROOT) -> list[str]:
    """requirements.txt lines for the third-party modules the Space code imports ({module: files},
    local_import_closure's).

    Each distribution gets the project's own requirements.txt line (a range, never the locally
    installed version as a floor). Gradio is left out: the Space installs the version in the
    README's sdk_version. A module whose distribution the project does not list is an error: the
    project's requirements.txt must be fixed first.
    """
    own = {p.stem for p in root.glob("*.py")} | {p.parent.name for p in root.glob("*/__init__.py")}
    project = {}
    for line in (root / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            project[norm_name(line)] = line
    lines: dict[str, str] = {}
    for module, files in sorted(imported.items()):
        if module in sys.stdlib_module_names or module in own or module in ("", "__future__"):
            continue
        for dist in map(norm_name, _distributions_by_module().get(module, [module])):
            if dist not in PROVIDED_BY_SPACE and dist not in project:
                raise HubError(f"{module} (imported by {', '.join(sorted(files))}) comes from {dist}, "
                               f"which requirements.txt does not list; add it there first")
            if dist not in PROVIDED_BY_SPACE:
                lines[dist] = project[dist]
    return [CPU_INDEX_LINE] + [lines[k] for k in sorted(lines)]


# --------------------------------------------------------------------------- README


def preload_entry(ref: str) -> str:
    """A `preload_from_hub` line: the whole repo, or, for a commit, the app's files at that commit."""
    repo_id, commit = parse_model_ref(ref)
    return f"{repo_id} {','.join(PRELOAD_FILES)} {commit}" if commit else repo_id


def space_readme(models: list[str], *, title: str = "CNN Studio") -> str:
    import gradio
    ids = list(dict.fromkeys(parse_model_ref(m)[0] for m in models))
    data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=gradio.__version__, python_version=SPACE_PYTHON,
        app_file=ENTRY, license=LICENSE, models=ids, tags=["image-classification", "cnn-studio"],
        emoji="🧠", colorFrom="indigo", colorTo="pink", pinned=False,
        short_description="VGG19-BN & ResNet50: CIFAR-10, MNIST, cats vs dogs",
        preload_from_hub=[preload_entry(m) for m in models],
    )
    body = README_BODY.format(title=title, env=HUB_MODELS_ENV, python=SPACE_PYTHON, gradio=gradio.__version__,
                              model_lines="\n".join(f"- [`{m}`](https://huggingface.co/{m})" for m in ids))
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}")).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- plan, write, upload


def write_space(out_dir: str | os.PathLike, models: list[str], *, root: Path = REPO_ROOT, force: bool = False) -> Path:
    """Write the Space folder. An existing folder must be empty, or an earlier Space (with --force)."""
    if not models:
        raise HubError("--models needs at least one Hub repo id")
    code, imported = local_import_closure(root)
    data = [p.relative_to(root).as_posix() for pattern in SPACE_DATA for p in sorted(root.glob(pattern))
            if p.is_file() and not p.name.startswith(".")]
    generated = {"requirements.txt": "\n".join(space_requirements(imported, root)) + "\n",
                 "README.md": space_readme(models)}
    copies = sorted({*code, *data, LICENSE_FILE})
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise HubError(f"{out}: not empty; choose a new folder or pass --force to replace the Space files")
        for name in {rel.split("/", 1)[0] for rel in [*copies, *generated]}:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    for rel in copies:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, out / rel)
    for rel, text in generated.items():
        (out / rel).write_text(text, encoding="utf-8")
    return out


def upload_space(out_dir: str | os.PathLike, space_id: str, *, private: bool = False, token: str | None = None,
                 out=None) -> str:
    """Create (or update) the Gradio Space and upload the folder (its README lists the models)."""
    check_repo_id(space_id)
    api = HfApi(token=require_token(token), **user_agent())
    with hub_errors(f"upload of the Space {space_id}"):
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        info = api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(out_dir),
                                 commit_message="CNN Studio Space", ignore_patterns=SPACE_UPLOAD_IGNORE)
    url = getattr(info, "commit_url", None) or str(info)
    print(f"uploaded the Space to https://huggingface.co/spaces/{space_id}\n{url}", file=out or sys.stdout)
    return url


def space(out_dir: str | os.PathLike, models: list[str], *, space_id: str | None = None, private: bool = False,
          dry_run: bool = False, force: bool = False, token: str | None = None, out=None) -> Path | None:
    out = out or sys.stdout
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="cnn-studio-space-") as tmp:
            write_space(tmp, models)
            print(f"dry run: would write a Space to {out_dir}" + (f" and upload it to {space_id}" if space_id
                                                                  else "") + f":\n{describe(Path(tmp))}", file=out)
        return None
    folder = write_space(out_dir, models, force=force)
    print(f"wrote the Space to {folder}:\n{describe(folder)}", file=out)
    if space_id:
        upload_space(folder, space_id, private=private, token=token, out=out)
    else:
        print(f"run it locally: cd {folder} && python app.py", file=out)
    return folder
