"""Training curves tab: accuracy and loss per epoch from history.json, several runs side by side,
and the Random Erasing comparison from metrics.json. Every number is read from the run files.
"""
from __future__ import annotations


import gradio as gr
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from models.jsonfile import try_read_json
from models.tasks import BASELINE, RANDOM_ERASING
from ui.catalog import TRAIN_COMMANDS, VARIANT_TITLES, Catalog, ModelEntry
from ui import inputs, live
from ui.common import LIGHT_CONCURRENCY, user_error

CURVE_COLUMNS = ["epoch", "value", "series"]



def runs_with_history(catalog: Catalog) -> list[ModelEntry]:
    return [e for e in catalog.with_files() if isinstance(try_read_json(e.root, "history.json"), list)]


def default_selection(entries: list[ModelEntry]) -> list[str]:
    """What the plots show first: the Random Erasing comparison (cats vs dogs baseline and RE)
    when both exist, else the default run of the first task (losses of different tasks do
    not share a scale)."""
    pair = [e.key for e in entries if e.default and e.task == "catsdogs"]
    if len(pair) == 2:
        return pair
    first = next((e for e in entries if e.default), entries[0] if entries else None)
    return [first.key] if first else []


def curves(catalog: Catalog, model_runs: list[str] | str | None):
    """Chosen run keys -> (accuracy frame, loss frame): columns epoch, value, series ("<run> train|val")."""
    model_runs = inputs.run_keys(model_runs, "model_runs")
    known = {e.key: e for e in runs_with_history(catalog)}
    unknown = [k for k in model_runs or [] if k not in known]
    if unknown:
        raise user_error(f"no training history for {', '.join(unknown)}")
    acc, loss = [], []
    for key in model_runs or []:
        a, l = history_rows(try_read_json(known[key].root, "history.json"), key)
        acc += a
        loss += l
    return pd.DataFrame(acc, columns=CURVE_COLUMNS), pd.DataFrame(loss, columns=CURVE_COLUMNS)


def history_rows(history, name: str) -> tuple[list, list]:
    """history.json rows -> (accuracy rows, loss rows) of (epoch, value, "<name> train|val")."""
    acc, loss = [], []
    for row in history if isinstance(history, list) else []:
        if not isinstance(row, dict) or "epoch" not in row:
            continue
        for split in ("train", "val"):
            series = f"{name} {split}"
            if isinstance(row.get(f"{split}_accuracy"), (int, float)):
                acc.append((row["epoch"], float(row[f"{split}_accuracy"]), series))
            if isinstance(row.get(f"{split}_loss"), (int, float)):
                loss.append((row["epoch"], float(row[f"{split}_loss"]), series))
    return acc, loss


def curve_figure(frame: pd.DataFrame, what: str, empty: str = "no run chosen") -> Figure:
    """One metric per epoch, one line per series: a marker at every measurement and whole-epoch
    ticks, so a two-epoch run reads as two measurements (not a line with ticks at 1.1, 1.2...);
    `empty` is written across the axes when there is nothing to draw."""
    fig = Figure(figsize=(6.4, 3.8), tight_layout=True)
    ax = fig.add_subplot(1, 1, 1)
    for series, rows in frame.groupby("series", sort=False):
        rows = rows.sort_values("epoch")
        ax.plot(rows["epoch"], rows["value"], marker="o", markersize=5,
                linestyle="--" if series.endswith(" train") else "-", label=series)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if len(frame):
        first, last = frame["epoch"].min(), frame["epoch"].max()
        ax.set_xlim(first - 0.5, last + 0.5)
        ax.legend(fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, color="gray")
    ax.set_xlabel("epoch")
    ax.set_ylabel(what)
    if what == "accuracy":
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.grid(alpha=0.3)
    return fig


def curve_figures(catalog: Catalog, model_runs: list[str] | str | None) -> tuple[Figure, Figure]:
    """Chosen run keys -> (accuracy figure, loss figure), from the runs' history.json."""
    acc, loss = curves(catalog, model_runs)
    return curve_figure(acc, "accuracy"), curve_figure(loss, "loss")


def erasing_comparison(catalog: Catalog, task: str = "catsdogs") -> tuple[pd.DataFrame, str]:
    """Final validation accuracy of every baseline and Random Erasing run of `task` (metrics.json)."""
    rows = []
    for e in catalog.with_files():
        if e.task != task or e.variant not in (BASELINE, RANDOM_ERASING):
            continue
        metrics = try_read_json(e.root, "metrics.json")
        if isinstance(metrics, dict) and isinstance(metrics.get("accuracy"), (int, float)):
            rows.append({"run": e.key, "variant": VARIANT_TITLES[e.variant],
                         "accuracy": float(metrics["accuracy"]), "images": metrics.get("num_images"),
                         "split": metrics.get("split")})
    frame = pd.DataFrame(rows, columns=["run", "variant", "accuracy", "images", "split"])
    if frame.empty:
        return frame, ("No cats vs dogs runs with metrics yet. Train both with "
                       f"`{TRAIN_COMMANDS[(task, BASELINE)]}` and `{TRAIN_COMMANDS[(task, RANDOM_ERASING)]}`.")
    lines = []
    for variant in (BASELINE, RANDOM_ERASING):
        sub = frame[frame.variant == VARIANT_TITLES[variant]]
        if len(sub):
            spread = f" ± {sub.accuracy.std(ddof=1):.1%} over {len(sub)} runs" if len(sub) > 1 else ""
            lines.append(f"**{VARIANT_TITLES[variant]}**: {sub.accuracy.mean():.1%}{spread} "
                         f"({int(sub.images.iloc[0]) if pd.notna(sub.images.iloc[0]) else '?'} {sub.split.iloc[0]} images)")
        else:
            lines.append(f"**{VARIANT_TITLES[variant]}**: no run yet (`{TRAIN_COMMANDS[(task, variant)]}`)")
    return frame, " · ".join(lines)


def build(catalog: Catalog) -> None:
    defaults = default_selection(runs_with_history(catalog))
    gr.Markdown("Accuracy and loss per epoch, training and validation, read from each run's "
                "`history.json`. Pick several runs to compare them.")
    live.markdown(catalog, lambda: "" if runs_with_history(catalog) else (
        "⚠️ No runs with a training history yet. Train one, e.g. "
        f"`{TRAIN_COMMANDS[('cifar10', BASELINE)]}`."), hide_empty=True, elem_classes=["notice"])
    chooser = live.dropdown(catalog, lambda: [e.key for e in runs_with_history(catalog)],
                            lambda: default_selection(runs_with_history(catalog)), multiselect=True, label="Runs")
    acc0, loss0 = curve_figures(catalog, defaults)
    with gr.Row():
        acc_plot = gr.Plot(acc0, label="Accuracy", elem_id="curves-accuracy")
        loss_plot = gr.Plot(loss0, label="Loss", elem_id="curves-loss")
    chooser.change(inputs.endpoint(curve_figures, catalog, images=()), inputs=[chooser],
                   outputs=[acc_plot, loss_plot], api_name="curves", preprocess=False, **LIGHT_CONCURRENCY)

    gr.Markdown("### Random Erasing: does it help?\nFinal validation accuracy (`metrics.json`) of the "
                "cats vs dogs ResNet50 trained without and with Random Erasing, same seed and initial weights.")
    frame, text = erasing_comparison(catalog)
    gr.BarPlot(frame, x="run", y="accuracy", color="variant", y_lim=[0, 1], height=300,
               title="Validation accuracy", x_label_angle=0, visible=not frame.empty)
    gr.Markdown(text, elem_id="erasing-summary")
