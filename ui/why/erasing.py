"""See why -> Random Erasing study: comparison.json (both variants over several seeds, training.compare)
with its uncertainty: accuracy per seed, mean ± std, the paired difference and its bootstrap CI."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from analysis.stats import comparison_markdown
from models.jsonfile import try_read_json
from ui import inputs, live
from ui.catalog import Catalog
from ui.common import LIGHT_CONCURRENCY
from ui.why.adapters import SIDE_BY_SIDE

COLUMNS = ["variant", "accuracy (%)", "seed"]


def find_comparisons(runs_dir) -> dict[str, Path]:
    """Name -> comparison.json written by training.compare under runs_dir/compare/<name>/."""
    return {p.parent.name: p for p in sorted(Path(runs_dir).glob("compare/*/comparison.json"))} if runs_dir else {}


def comparison_view(path: Path | None):
    """comparison.json -> (markdown with the numbers and their uncertainty: mean ± std per variant, the
    paired difference with its bootstrap CI, McNemar's test; the accuracy of each variant per seed)."""
    data = try_read_json(Path(path).parent, Path(path).name) if path else None
    if not isinstance(data, dict) or "variants" not in data:
        return (f"No comparison yet. Run `python -m training.compare --task {SIDE_BY_SIDE[0]} --seeds 0 1 2`: it "
                "trains both variants per seed from the same initial weights and writes comparison.json."), None
    try:
        points = [(name, round(a * 100, 2), f"seed {seed}") for name, v in data["variants"].items()
                  for seed, a in zip(data["seeds"], v["accuracy"])]
        return comparison_markdown(data), pd.DataFrame(points, columns=COLUMNS)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return f"comparison.json is not readable ({type(e).__name__}).", None


def comparison(catalog: Catalog, comparison_name=None):
    comparison_name = inputs.text(comparison_name, "comparison_name")
    paths = find_comparisons(catalog.runs_dir)
    if not paths:                 # nothing to choose from: the view says how to make one
        return comparison_view(None)
    return comparison_view(paths[inputs.choice(comparison_name, "comparison_name", list(paths))])


def build(catalog: Catalog) -> None:
    pick = live.dropdown(catalog, lambda: list(find_comparisons(catalog.runs_dir)),
                         lambda: next(iter(find_comparisons(catalog.runs_dir)), None), label="Comparison")
    text0, points0 = comparison(catalog, pick.value)
    text = gr.Markdown(text0, label="Comparison summary")
    plot = gr.ScatterPlot(points0, x="variant", y=COLUMNS[1], color="seed", title="Accuracy of each variant per seed",
                          height=300, label="Accuracy per seed", show_label=False, elem_id="erasing-seeds")
    pick.change(inputs.endpoint(comparison, catalog, images=()), inputs=[pick], outputs=[text, plot],
                api_name="erasing_study", preprocess=False, **LIGHT_CONCURRENCY)
