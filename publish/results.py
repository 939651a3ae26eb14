"""The README's results table, read from run directories (never typed by hand).

    python -m publish.results runs/                 # print the markdown table
    python -m publish.results runs/ --update README.md
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from models.atomic import atomic_write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"


def find_runs(root: Path) -> list[Path]:
    """Complete run directories under root: config.json + model.safetensors + metrics.json."""
    return sorted(p.parent for p in root.glob("*/*/metrics.json")
                  if (p.parent / "model.safetensors").is_file() and (p.parent / "config.json").is_file())


def table(runs: list[Path], root: Path) -> str:
    lines = ["| task | variant | model | epochs | train images | val images (split) | val accuracy | device | run |",
             "| --- | --- | --- | ---: | ---: | --- | ---: | --- | --- |"]
    for run in runs:
        config = json.loads((run / "config.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        history = json.loads((run / "history.json").read_text())
        ds = config["dataset"]
        lines.append(
            f"| {config['task']} | {config['variant']} | {config['architecture']} | {len(history)} | "
            f"{ds['train_images']:,} | {metrics['num_images']:,} ({metrics['split']}) | "
            f"{metrics['accuracy'] * 100:.2f}% | {config.get('device', '?')} | `{run.relative_to(root.parent)}` |")
    if not runs:
        lines.append("| (no finished runs yet) | | | | | | | | |")
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="?", default="runs")
    p.add_argument("--update", metavar="README", help="replace the table between the results markers")
    args = p.parse_args(argv)
    root = Path(args.runs)
    md = table(find_runs(root), root)
    if args.update:
        path = Path(args.update)
        text = path.read_text(encoding="utf-8")
        if START not in text or END not in text:
            raise SystemExit(f"{path}: no {START} ... {END} markers")
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda m: f"{START}\n{md}\n{END}", text, flags=re.S)
        atomic_write_text(path, text)
    print(md)
    return md


if __name__ == "__main__":
    main()
