"""The README's results table: every row backed by files committed under results/.

The table in README.md must be exactly what `python -m publish.results` builds from the
committed folders, each folder must hold the run's facts (never weights), and a partial run's
row must say it is a subset.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from publish import results

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "results"
README = REPO_ROOT / "README.md"


def committed_result_folders() -> list[Path]:
    return sorted(p.parent for p in RESULTS.glob("*/*/config.json"))


def table_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")][1:]   # drop the header
    return [[cell.strip() for cell in ln.strip("|").split(" | ")] for ln in lines if not ln.startswith("| ---")]


def readme_table(path: Path) -> str:
    """The table currently between the results markers of `path`."""
    found = re.search(re.escape(results.START) + r"\n(.*?)\n" + re.escape(results.END),
                      path.read_text(encoding="utf-8"), flags=re.S)
    assert found, f"{path}: no {results.START} ... {results.END} markers"
    return found.group(1)


def test_readme_table_is_what_publish_results_builds_from_the_committed_folders():
    shown = readme_table(README)
    assert shown == results.table(results.find_runs(RESULTS), REPO_ROOT)
    # and the CLI prints the same table
    out = subprocess.run([sys.executable, "-m", "publish.results"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == shown


def test_every_row_names_a_committed_folder_with_its_facts_and_no_weights():
    rows = table_rows(readme_table(README))
    assert rows and rows[0][0] != "(no committed results yet)", "at least one real row"
    folders = committed_result_folders()
    assert len(rows) == len(folders)
    for cells in rows:
        [link] = re.findall(r"\[`([^`]+)`\]", cells[-1])
        folder = REPO_ROOT / link
        assert folder in folders, link
        for name in ("config.json", "metrics.json", "history.json", "README.md", "curves.png"):
            assert (folder / name).is_file(), f"{link}/{name} is not committed"
        if (REPO_ROOT / ".git").exists():   # a checkout (not an unpacked archive): the files are in git
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(folder / "metrics.json")],
                                     cwd=REPO_ROOT, capture_output=True)
            assert tracked.returncode == 0, f"{link} is not committed to git"
    heavy = [p for p in RESULTS.rglob("*") if p.is_file() and (p.suffix in (".safetensors", ".pt", ".pth", ".bin")
                                                                or "tb" in p.parts or "events.out" in p.name)]
    assert not heavy, f"weights or logs under results/: {heavy}"


def test_each_row_reads_its_numbers_from_the_folder_and_flags_subsets():
    for cells in table_rows(readme_table(README)):
        [link] = re.findall(r"\[`([^`]+)`\]", cells[-1])
        folder = REPO_ROOT / link
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        history = json.loads((folder / "history.json").read_text())
        task, variant, arch, epochs, train, evaluated, accuracy, device, minutes = cells[:9]
        assert (task, variant, arch) == (config["task"], config["variant"], config["architecture"])
        assert device.split(" (")[0] == config["device"] and config["precision"] in device
        if (config.get("hardware") or {}).get("cpu"):
            assert config["hardware"]["cpu"] in device
        assert minutes == f"{sum(row['seconds'] for row in history) / 60:.1f} min"
        assert int(epochs) == len(history)
        assert accuracy == f"{100 * metrics['accuracy']:.2f}%"
        assert evaluated.startswith(f"{metrics['num_images']:,} of `{metrics['split']}`")
        assert ("subset" in evaluated) == (config["limit_val"] is not None)
        assert ("subset" in train) == (config["limit_train"] is not None)
        card = ModelCard.load(folder / "README.md")
        if config["limit_val"] is not None:
            assert card.data.eval_results is None, "a subset evaluation never enters the model-index"


def test_add_copies_the_facts_of_a_run_and_nothing_else(catsdogs_run, tmp_path):
    target = results.add(catsdogs_run, tmp_path / "results")
    assert target == tmp_path / "results" / catsdogs_run.parent.name / catsdogs_run.name
    assert sorted(p.name for p in target.iterdir()) == sorted(results.FACT_FILES)
    for name in ("config.json", "metrics.json", "history.json", "curves.png"):
        assert (target / name).read_bytes() == (catsdogs_run / name).read_bytes()
    assert ModelCard.load(target / "README.md").data.tags
    md = results.table(results.find_runs(tmp_path / "results"), tmp_path)
    assert len(table_rows(md)) == 1 and "subset" in md


def test_add_refuses_what_is_not_a_finished_run(tmp_path, capsys):
    assert results.main(["add", str(tmp_path), "--results", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing config.json" in err and len(err.splitlines()) == 1


def test_update_needs_the_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    assert results.main(["--update", str(readme)]) == 1
    assert "no <!-- results:start -->" in capsys.readouterr().err
    readme.write_text(f"a\n{results.START}\nold\n{results.END}\nb\n")
    assert results.main(["--update", str(readme)]) == 0
    assert readme_table(readme) == results.table(results.find_runs(RESULTS), REPO_ROOT)
    assert readme.read_text().startswith("a\n") and readme.read_text().endswith(f"{results.END}\nb\n")


@pytest.mark.parametrize("folder", committed_result_folders(), ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_committed_card_is_the_card_of_its_facts(folder):
    """The committed card renders from the committed facts (the numbers cannot drift apart)."""
    card = (folder / "README.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert f"{100 * metrics['accuracy']:.2f}%" in card
    assert f"{metrics['num_images']:,} images" in card
