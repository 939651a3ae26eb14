"""The Gradio Space that demos Hub models: a folder holding only what `python app.py` runs.

    python -m publish.hub space OUT_DIR --models REPO_ID ... [--space-id USER/NAME] [--dry-run]

What goes in (and nothing else):
- app.py and every local module it imports, followed transitively through the import
  statements of each file (also imports inside functions): app/ui/models/... as they are
  actually used, never training/, cards/ or publish/ unless the app imports them;
- the data files the app reads at run time (SPACE_DATA: the sample images in assets/,
  not assets/screenshots/);
- requirements.txt: the project's own requirement lines for each third-party distribution
  those files import, plus PyTorch's CPU wheel index (free Spaces have no GPU: the CPU wheels
  of torch/torchvision are a fraction of the CUDA build's download);
- README.md, whose YAML header configures the Space: sdk, sdk_version (gradio, installed by
  the platform), python_version (the requirements are resolved for exactly that version, see
  tests/test_space.py), app_file, models, preload_from_hub.
In the Space the app loads the listed models from the Hub (CNN_STUDIO_HUB_MODELS).
"""
from __future__ import annotations

import ast
import functools
import fnmatch
import os
import re
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from huggingface_hub import HfApi, SpaceCard, SpaceCardData

from models.tasks import HUB_MODELS_ENV
from publish.common import HubError, check_repo_id, hub_errors, looks_like_repo_id, require_token, user_agent

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY = "app.py"
# Read by the app at run time (ui/common.py: ASSETS_DIR/*.png, the tabs' example images).
SPACE_DATA = ["assets/*.png"]
# The Python the Space runs (README python_version); the platform's default is older (3.10),
# and pandas 3 / numpy 2.3+ need 3.11. tests/test_space.py resolves requirements.txt for it.
SPACE_PYTHON = "3.11"
# PyTorch's CPU-only wheels. An extra index (not --index-url) so every other package still
# comes from PyPI; pip prefers torch "X.Y.Z+cpu" here over PyPI's CUDA "X.Y.Z" (a local version
# label sorts after the bare version, PEP 440). On GPU hardware, drop this line (docs/hub.md).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_INDEX_LINE = f"--extra-index-url {TORCH_CPU_INDEX}"

SPACE_IGNORE = ["__pycache__", "*.pyc", ".*"]
# Left behind by running the Space folder locally; never uploaded.
SPACE_UPLOAD_IGNORE = ["*__pycache__*", "*.pyc", ".*", "*/.*", "runs/*", "flagged/*"]
PRELOAD_FILES = ["config.json", "model.safetensors", "README.md", "history.json", "metrics.json"]
# Installed by the Space itself from the README's sdk / sdk_version.
PROVIDED_BY_SPACE = {"gradio"}


@dataclass
class SpacePlan:
    """What `space` writes: files copied from the repo, and files generated."""
    copies: list[tuple[Path, str]]        # (source file, path in the Space)
    generated: dict[str, str]             # path in the Space -> text
    warnings: list[str]

    def files(self) -> list[str]:
        return sorted([rel for _, rel in self.copies] + list(self.generated))


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    repo_id, _, revision = ref.partition("@")
    if not looks_like_repo_id(repo_id):
        raise HubError(f"--models {ref!r}: expected a Hub repo id USER/NAME[@revision]")
    return repo_id, revision or None


# --------------------------------------------------------------------------- what the app runs


def _imports(tree: ast.AST, rel: str) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import in a file (relative ones resolved)."""
    package = rel[:-3].replace("/", ".").split(".")[:-1]
    if rel.endswith("__init__.py"):
        package = rel[: -len("/__init__.py")].replace("/", ".").split(".")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [a.name for a in node.names]))
    return out


def _module_file(root: Path, module: str) -> str | None:
    """The repo file that defines `module` (a.b -> a/b.py or a/b/__init__.py), if it is local."""
    parts = module.split(".")
    for candidate in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def local_import_closure(root: Path = REPO_ROOT, entry: str = ENTRY) -> list[str]:
    """The repo's .py files that `entry` imports, directly or through each other, with entry."""
    if not (root / entry).is_file():
        raise HubError(f"{root / entry}: missing; the Space runs the CNN Studio app")
    seen, todo = set(), [entry]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        path = root / rel
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as e:
            raise HubError(f"{path}: does not parse ({e.msg}, line {e.lineno})") from e
        for module, names in _imports(tree, rel):
            parts = module.split(".")
            # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            targets = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            targets += [f"{module}.{name}" for name in names if name != "*"]   # from pkg import submodule
            for target in targets:
                found = _module_file(root, target)
                if found and found not in seen:
                    todo.append(found)
    return sorted(seen)


def space_code_files(root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(file, relative path) for what the Space runs: the app's import closure and SPACE_DATA."""
    rels = local_import_closure(root)
    for pattern in SPACE_DATA:
        rels += sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file()
                       and not any(fnmatch.fnmatch(part, pat) for part in p.parts for pat in SPACE_IGNORE))
    return [(root / rel, rel) for rel in sorted(set(rels))]


def local_packages(root: Path = REPO_ROOT) -> set[str]:
    """Top-level names that are this repository's own modules (never requirements)."""
    return {p.stem if p.is_file() else p.name for p in root.iterdir()
            if (p.is_file() and p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file())}


def imported_modules(files: list[tuple[Path, str]]) -> dict[str, set[str]]:
    """Top-level module -> the Space files that import it (any import, also inside functions)."""
    found: dict[str, set[str]] = {}
    for path, rel in files:
        if not rel.endswith(".py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for module, _ in _imports(tree, rel):
            if module:
                found.setdefault(module.split(".")[0], set()).add(rel)
    return found


def third_party_modules(modules: dict[str, set[str]], root: Path = REPO_ROOT) -> dict[str, set[str]]:
    own = local_packages(root)
    return {m: files for m, files in modules.items()
            if m not in sys.stdlib_module_names and m not in own and m != "__future__"}


# --------------------------------------------------------------------------- requirements


def norm_name(requirement: str) -> str:
    """The normalised distribution name of a requirement line (PEP 503)."""
    name = requirement
    for sep in "<>=!~;[ #":
        name = name.split(sep, 1)[0]
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def project_requirements(path: Path) -> dict[str, str]:
    """requirements.txt -> {normalised name: the line without its comment}."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out[norm_name(line)] = line
    return out


@functools.cache
def _distributions_by_module() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())   # reads every installed package's metadata: once


def distributions_of(module: str) -> list[str]:
    return _distributions_by_module().get(module, [module])


def space_requirements(modules: dict[str, set[str]], root: Path = REPO_ROOT) -> list[str]:
    """requirements.txt lines for the third-party modules the Space code imports.

    Each distribution gets the project's own requirements.txt line (a range, never the
    locally installed version as a floor). Gradio is left out: the Space installs the version
    in the README's sdk_version. A module whose distribution the project does not list is an
    error: the project's requirements.txt must be fixed first.
    """
    project = project_requirements(root / "requirements.txt")
    lines: dict[str, str] = {}
    for module, files in sorted(third_party_modules(modules, root).items()):
        for dist in distributions_of(module):
            key = norm_name(dist)
            if key in PROVIDED_BY_SPACE or key in lines:
                continue
            if key not in project:
                raise HubError(f"{module} (imported by {', '.join(sorted(files))}) comes from {dist}, "
                               f"which requirements.txt does not list; add it there first")
            lines[key] = project[key]
    return [CPU_INDEX_LINE] + [lines[k] for k in sorted(lines)]


# --------------------------------------------------------------------------- README


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
        title=title, sdk="gradio", sdk_version=gradio.__version__, python_version=SPACE_PYTHON,
        app_file=ENTRY, license="mit",
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
ids, set by `python -m publish.hub space ... --space-id`). To run this folder locally
(Python {SPACE_PYTHON}):

```bash
pip install gradio=={gradio.__version__} -r requirements.txt
{HUB_MODELS_ENV}="{ids}" python app.py     # or: gradio app.py (reloads on edits)
```

`requirements.txt` installs the CPU-only builds of torch and torchvision (first line), as
free Space hardware has no GPU. On GPU hardware, delete that line so that pip installs
PyPI's CUDA builds.
"""
    card = SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}")
    return str(card).rstrip("\n") + "\n"


# --------------------------------------------------------------------------- plan, write, upload


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
        "requirements.txt": "\n".join(space_requirements(modules, root)) + "\n",
        "README.md": space_readme(models, title=title),
    }
    return SpacePlan(copies=copies, generated=generated, warnings=warnings)


def write_space(out_dir: str | os.PathLike, plan: SpacePlan, *, force: bool = False) -> Path:
    """Write the Space folder. An existing folder must be empty, or an earlier Space (with --force)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise HubError(f"{out}: not empty; choose a new folder or pass --force to replace the Space files")
        for name in {rel.split("/", 1)[0] for rel in plan.files()}:
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
    api = HfApi(token=require_token(token), **user_agent())
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
