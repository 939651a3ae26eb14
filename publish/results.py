"""The README's results table, built from run facts committed under results/ (never typed by hand).

    python -m publish.results add runs/mnist/<run>          # copy a run's facts to results/mnist/<run>/
    python -m publish.results                               # print the table of results/
    python -m publish.results --update README.md            # replace the table in the README

A results folder holds what backs a row and nothing heavier: config.json, metrics.json,
history.json, the model card (README.md) and curves.png; never weights or checkpoints (those
live in the run directory or on the Hub). A row of a partial run (--limit-train/--limit-val)
says so: its numbers describe a subset, not the recipe on the full dataset.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from models.atomic import atomic_write_text
from models.jsonfile import read_json
from publish.common import REPO_ROOT, run_command

RESULTS_DIR = REPO_ROOT / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"
FACT_FILES = ["config.json", "metrics.json", "history.json", "README.md", "curves.png"]
REQUIRED = ["config.json", "metrics.json", "history.json"]


class ResultsError(Exception):
    """A results folder or README that cannot be used; the message is one line."""


def find_runs(root: Path) -> list[Path]:
    """Result folders <task>/<run>/ under root that hold config.json, metrics.json and history.json."""
    return sorted(p.parent for p in Path(root).glob("*/*/metrics.json")
                  if all((p.parent / name).is_file() for name in REQUIRED))


def add(run_dir: Path, root: Path = RESULTS_DIR) -> Path:
    """Copy the facts of a finished run into root/<task-folder>/<run>/ (the card re-rendered there)."""
    run_dir = Path(run_dir)
    missing = [name for name in REQUIRED if not (run_dir / name).is_file()]
    if missing:
        raise ResultsError(f"{run_dir}: missing {', '.join(missing)}; is this a finished run directory?")
    target = Path(root) / run_dir.parent.name / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in FACT_FILES:
        if name != "README.md" and (run_dir / name).is_file():
            shutil.copy2(run_dir / name, target / name)
    from analysis.stats import comparison_for_run
    from cards import read_facts, render_card
    atomic_write_text(target / "README.md", render_card(read_facts(run_dir, comparison=comparison_for_run(run_dir))))
    return target


def _cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def row(run: Path, base: Path) -> str:
    config, metrics, history = (read_json(run / f"{name}.json") for name in ("config", "metrics", "history"))
    ds = config.get("dataset") or {}
    train = _cell(ds.get("train_images", "?"))
    if config.get("limit_train") is not None:
        train += f" (subset: `--limit-train {config['limit_train']}`)"
    evaluated = f"{_cell(metrics['num_images'])} of `{metrics['split']}`"
    if config.get("limit_val") is not None:
        evaluated += f" (subset: `--limit-val {config['limit_val']}`)"
    else:
        evaluated += " (whole split)"
    link = run.relative_to(base).as_posix()
    return (f"| {config['task']} | {config['variant']} | {config['architecture']} | {len(history)} | {train} | "
            f"{evaluated} | {metrics['accuracy'] * 100:.2f}% | {machine(config)} | {training_time(history)} | "
            f"[`{link}`]({link}/) |")


def machine(config: dict) -> str:
    """The device, then what the run recorded of the machine: CPU or GPU model, cores, precision."""
    hw = config.get("hardware") or {}
    details = [hw.get("gpu") or hw.get("cpu"), f"{hw['cpu_cores']} cores" if hw.get("cpu_cores") and not hw.get("gpu")
               else None, config.get("precision")]
    details = [d for d in details if d]
    return f"{config.get('device', '?')} ({', '.join(details)})" if details else str(config.get("device", "?"))


def training_time(history: list[dict]) -> str:
    """The epochs' recorded training time (wall clock, evaluation not included), in minutes or hours."""
    seconds = sum(row.get("seconds") or 0.0 for row in history)
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def table(runs: list[Path], base: Path = REPO_ROOT) -> str:
    lines = ["| task | variant | model | epochs | train images | evaluated on | accuracy | device | time | run |",
             "| --- | --- | --- | ---: | --- | --- | ---: | --- | ---: | --- |"]
    lines += [row(run, base) for run in runs]
    if not runs:
        lines.append("| (no committed results yet) | | | | | | | | | |")
    return "\n".join(lines)


def update_readme(path: Path, md: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the markers `start` and `end` in `path` with `md` (also
    benchmarks/report.py's performance table)."""
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ResultsError(f"{path}: no {start} ... {end} markers; add them where the table goes")
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: f"{start}\n{md}\n{end}", text, flags=re.S)
    atomic_write_text(path, text)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m publish.results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", choices=["table", "add"], default="table")
    p.add_argument("path", nargs="?", help="table: the results folder (default results/); add: a run directory")
    p.add_argument("--results", default=str(RESULTS_DIR), help="results folder (default: the repo's results/)")
    p.add_argument("--update", metavar="README", help="replace the table between the results markers")
    return p


def run(args: argparse.Namespace) -> None:
    if args.command == "add":
        if not args.path:
            raise ResultsError("add needs a run directory: python -m publish.results add runs/<task>/<run>")
        print(f"wrote {add(Path(args.path), Path(args.results))}")
        return
    root = Path(args.path or args.results)
    md = table(find_runs(root), root.resolve().parent)
    if args.update:
        update_readme(Path(args.update), md)
    print(md)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    return run_command(lambda: run(args), (ResultsError,))


if __name__ == "__main__":
    sys.exit(main())
