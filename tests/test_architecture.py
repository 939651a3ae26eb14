"""The import directions of docs/architecture.md, checked over every .py file of the repo.

Each file's imports are read with `ast` (module level and inside functions alike), so a
lazy `from training.train import ...` inside the app counts as much as one at the top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PROJECT = ("app", "ui", "models", "analysis", "cards", "training", "publish", "benchmarks", "scripts", "tests")

# package -> the project packages it may import (besides itself); docs/architecture.md.
ALLOWED = {
    "models": set(),
    "analysis": {"models"},
    "cards": {"models", "analysis"},
    "ui": {"models", "analysis", "cards", "ui"},
    "app": {"models", "analysis", "cards", "ui"},
    "publish": {"models", "cards", "analysis"},
    "training": {"models", "analysis", "cards"},
}


def package_of(path: Path) -> str:
    rel = path.relative_to(REPO)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_packages(path: Path) -> set[str]:
    """First components of every absolute import in `path` that name a project package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in PROJECT}
    return found


def project_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py")
                  if package_of(p) in ALLOWED and not any(part.startswith(".") for part in p.relative_to(REPO).parts))


def test_every_package_imports_only_what_the_architecture_allows():
    wrong = []
    for path in project_files():
        package = package_of(path)
        for target in sorted(imported_packages(path) - ALLOWED[package] - {package}):
            wrong.append(f"{path.relative_to(REPO)} imports {target}")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_the_checker_sees_lazy_and_dotted_imports(tmp_path):
    """The rule above can fail: a function-level `from training.x import y` and a plain
    `import publish.hub` are both found; relative imports and third-party ones are not."""
    source = tmp_path / "probe.py"
    source.write_text("import os, publish.hub\nfrom . import sibling\n"
                      "def f():\n    from training.train import run\n    import torch\n", encoding="utf-8")
    assert imported_packages(source) == {"publish", "training"}


@pytest.mark.parametrize("package", ["models", "analysis", "cards", "training", "ui"])
def test_each_package_exists_and_is_checked(package):
    assert any(package_of(p) == package for p in project_files()), package


def test_the_architecture_note_states_the_same_rules():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for package, allowed in ALLOWED.items():
        line = next((ln for ln in text.splitlines() if ln.startswith(f"| `{package}")), None)
        assert line is not None, f"docs/architecture.md has no row for {package}"
        cells = line.split("|")
        listed = {name.strip(" `") for name in cells[2].split(",") if name.strip(" `-—")}
        assert listed == allowed, (package, listed, allowed)


# --- small functions (issue 17: "no function over ~80 lines outside tests") --------------------

MAX_FUNCTION_LINES = 80


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method in `path`: from its `def` line to its
    last line, docstring included (issue 21 counts them so)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                found.append((f"{prefix}{child.name}", lines))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def product_files() -> list[Path]:
    """Every .py file outside tests/: the packages, app.py, benchmarks/ and scripts/."""
    return sorted(p for p in REPO.rglob("*.py") if p.relative_to(REPO).parts[0] != "tests"
                  and not any(part.startswith(".") for part in p.relative_to(REPO).parts))


def test_no_function_outside_the_tests_is_longer_than_80_lines():
    long = [f"{path.relative_to(REPO)}: {name} ({lines} lines)" for path in product_files()
            for name, lines in function_lengths(path) if lines > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(long)


def test_the_length_check_counts_whole_functions_and_sees_methods(tmp_path):
    source = tmp_path / "probe.py"
    body = "".join(f"        x{i} = {i}\n" for i in range(81))
    source.write_text('class A:\n    def long(self):\n        """Doc\n\n        more."""\n' + body
                      + '\n\ndef short():\n    """One line."""\n    return 1\n', encoding="utf-8")
    assert dict(function_lengths(source)) == {"A.long": 85, "short": 3}


def test_task_names_are_written_only_in_the_task_records():
    """A task is one record (models/tasks.py): no other product file spells a task's name as a value
    (a tab, a default, a table keyed by task). Docstrings may name tasks in examples."""
    from models.tasks import TASKS
    names, spelled = set(TASKS), []
    for path in project_files():
        if package_of(path) == "tests" or path == REPO / "models" / "tasks.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        spelled += [f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings]
    assert not spelled, "task names outside models/tasks.py:\n" + "\n".join(spelled)


# --- the docs name files that exist ------------------------------------------------------------

def test_every_project_file_the_docs_name_exists():
    """A file of the project named in the README or docs/ (`models/tasks.py`, `docs/hub.md:...`) is there:
    files move in a redesign, and a guide that sends a reader to a missing file is a dead end."""
    import re
    named = re.compile(r"`([A-Za-z_][\w./-]*\.(?:py|md|json|txt|sh|css|js|png|ini))(?::[\w.]+)?`")
    docs = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{doc.relative_to(REPO)}: {path}" for doc in docs for path in named.findall(doc.read_text())
               if path.split("/")[0] in PROJECT and "/" in path and not (REPO / path).exists()]
    assert not missing, missing
