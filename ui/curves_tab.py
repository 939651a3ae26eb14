"""Training curves tab: accuracy and loss per epoch from history.json, several runs side by side,
and the final accuracy of each baseline and Random Erasing run (metrics.json), for every task that
trains both (models/tasks.py). Every number is read from the run files; each split is called by the
name its run gives it.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from models.jsonfile import try_read_json
from models.tasks import TASKS
from ui import inputs
from ui.catalog import Catalog, ModelEntry
from ui.common import LIGHT_CONCURRENCY, user_error
from ui.why.adapters import SIDE_BY_SIDE, first_key, run_picker

CURVE_COLUMNS = ["epoch", "value", "series"]
COMPARISON_COLUMNS = ["run", "variant", "accuracy", "split", "task"]


def has_history(entry: ModelEntry) -> bool:
    return isinstance(try_read_json(entry.root, "history.json"), list)


def default_selection(entries: list[ModelEntry]) -> list[str]:
    """What the plots show first: the default runs of both variants of the first task that has them
    (the Random Erasing comparison), else the default run of the first task (losses of different tasks
    do not share a scale)."""
    for task in SIDE_BY_SIDE:
        pair = [e.key for e in entries if e.default and e.task == task]
        if len(pair) == len(TASKS[task].variants):
            return pair
    return [first] if (first := first_key(entries)) else []


def history_rows(history, name: str, split: str = "val") -> tuple[list, list]:
    """history.json rows -> (accuracy rows, loss rows) of (epoch, value, "<name> train|<split>")."""
    rows = [row for row in history if isinstance(row, dict) and "epoch" in row] if isinstance(history, list) else []
    return tuple([(row["epoch"], float(row[f"{prefix}_{what}"]), f"{name} {shown}") for row in rows
                  for prefix, shown in (("train", "train"), ("val", split))
                  if isinstance(row.get(f"{prefix}_{what}"), (int, float))] for what in ("accuracy", "loss"))


def curves(catalog: Catalog, model_runs):
    """Chosen run keys -> (accuracy frame, loss frame): columns epoch, value, series."""
    model_runs = inputs.run_keys(model_runs, "model_runs")
    known = {e.key: e for e in catalog.with_files() if has_history(e)}
    unknown = [k for k in model_runs if k not in known]
    if unknown:
        raise user_error(f"no training history for {', '.join(unknown)}")
    acc, loss = [], []
    for key in model_runs:
        root = known[key].root
        split = (try_read_json(root, "metrics.json") or {}).get("split") or "validation"   # the run's own word
        a, l = history_rows(try_read_json(root, "history.json"), key, split)
        acc, loss = acc + a, loss + l
    return pd.DataFrame(acc, columns=CURVE_COLUMNS), pd.DataFrame(loss, columns=CURVE_COLUMNS)


def curve_figure(frame: pd.DataFrame, what: str, empty: str = "no run chosen") -> Figure:
    """One metric per epoch, one line per series: a marker at every measurement and whole-epoch
    ticks, so a two-epoch run reads as two measurements (not a line with ticks at 1.1, 1.2...);
    `empty` is written across the axes when there is nothing to draw. Small in inches with large
    type, so that its text stays readable on a phone, where the picture is shrunk to the screen;
    the legend below the axes, never over a point."""
    fig = Figure(figsize=(4.8, 4.4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for series, rows in frame.groupby("series", sort=False):
        rows = rows.sort_values("epoch")
        ax.plot(rows["epoch"], rows["value"], marker="o", markersize=5,
                linestyle="--" if series.endswith(" train") else "-", label=series)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(frame):
        ax.set_xlim(frame["epoch"].min() - 0.5, frame["epoch"].max() + 0.5)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=11)
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_title(what.capitalize(), fontsize=14)
    ax.set_xlabel("epoch", fontsize=13)
    ax.tick_params(labelsize=12)
    if what == "accuracy":
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(alpha=0.3)
    return fig


def curve_figures(catalog: Catalog, model_runs):
    """Chosen run keys -> (accuracy figure, loss figure), from the runs' history.json."""
    acc, loss = curves(catalog, model_runs)
    return curve_figure(acc, "accuracy"), curve_figure(loss, "loss")


def erasing_comparison(catalog: Catalog) -> tuple[pd.DataFrame, str]:
    """Final accuracy (metrics.json) of every run of a task with two variants, baselines first."""
    rows = [[e.key, variant.title, float(m["accuracy"]), m.get("split"), TASKS[task].title]
            for task in SIDE_BY_SIDE for variant in TASKS[task].variants for e in catalog.entries(task, variant)
            if e.root and isinstance(m := try_read_json(e.root, "metrics.json"), dict)
            and isinstance(m.get("accuracy"), (int, float))]
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    if frame.empty:
        commands = " and ".join(f"`{TASKS[SIDE_BY_SIDE[0]].train_command(v)}`" for v in TASKS[SIDE_BY_SIDE[0]].variants)
        return frame, f"No runs with metrics yet. Train both with {commands}."
    summary = frame.groupby(["task", "variant", "split"], sort=False).accuracy.agg(["mean", "std", "count"])
    return frame, "  \n".join(f"**{task}, {variant}**: {mean:.1%}" + (f" ± {std:.1%} over {n} runs" if n > 1 else "")
                              + f" ({split} split)" for (task, variant, split), (mean, std, n) in summary.iterrows())


def build(catalog: Catalog) -> None:
    gr.Markdown("Accuracy and loss per epoch, on the training images and on the split each run is evaluated on "
                "(`history.json`). Pick several runs to compare them.")
    chooser = run_picker(catalog, has_history, default=default_selection, multiselect=True, label="Runs",
                         notice="⚠️ No runs with a training history yet. Train one, e.g. "
                                f"`{next(iter(TASKS.values())).train_command()}`.")
    acc0, loss0 = curve_figures(catalog, chooser.value)
    with gr.Row():
        acc_plot = gr.Plot(acc0, label="Accuracy", show_label=False, elem_id="curves-accuracy", min_width=300)
        loss_plot = gr.Plot(loss0, label="Loss", show_label=False, elem_id="curves-loss", min_width=300)
    chooser.change(inputs.endpoint(curve_figures, catalog, images=()), inputs=[chooser],
                   outputs=[acc_plot, loss_plot], api_name="curves", preprocess=False, **LIGHT_CONCURRENCY)

    gr.Markdown("### Random Erasing: does it help?\nFinal accuracy (`metrics.json`) of the models trained "
                "without and with Random Erasing, same seed and initial weights.")
    frame, text = erasing_comparison(catalog)
    # Bars in the frame's order (baselines first), the legend in the order its colours first appear: the same.
    gr.BarPlot(frame, x="run", y="accuracy", color="variant", y_lim=[0, 1], height=300, sort=list(frame.run),
               title="Final accuracy", x_label_angle=0, visible=not frame.empty, elem_id="erasing-bars")
    gr.Markdown(text, elem_id="erasing-summary")
