"""Handlers for "See why": Grad-CAM, confusion-matrix gallery, occlusion playground, decision
threshold + reliability diagram, top losses, and the Random Erasing comparison.

Plain functions on a loaded model (`models.artifact.LoadedModel`, i.e. `catalog.get(...).loaded`)
or a run folder (`entry.root`), so tests call them without a server and any tab can wire
them. Every number comes from the run's files (metrics.json, predictions.json,
comparison.json) or from running the model; nothing here imports `training/`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from models.artifact import LoadedModel
from models.registry import ARCHITECTURES
from models.jsonfile import run_file, try_read_json
from analysis.explain import erase, explain_image, occlusion_sweep, overlay
from models.predict import logits_to_probs, prepare
from analysis.stats import (Predictions, confusion_cell, load_predictions, reliability, threshold_metrics,
                          threshold_sweep, top_losses)
from ui.val_images import ValidationImages

VIEW_SIZE = 256            # small inputs are shown enlarged to this (nearest neighbour)
GALLERY_LIMIT = 60         # images shown per confusion cell (the count says how many there are)
PREDICTED = "predicted class"
TRUE_COLUMN = "true \\ predicted"
EVALUATE_HINT = "python -m training.evaluate {run} --predictions"



def read_predictions(root: Path | None) -> Predictions | None:
    path = run_file(root, "predictions.json") if root is not None else None
    try:
        return load_predictions(path) if path is not None else None
    except (OSError, ValueError):
        return None


def _no_predictions(root: Path | None) -> str:
    # The run as <task>/<run>, its place in the runs folder: never a server path.
    run = f"runs/{Path(root).parent.name}/{Path(root).name}" if root else "RUN_DIR"
    return ("This run has no usable predictions.json (per-image predictions); write it with "
            f"`{EVALUATE_HINT.format(run=run)}`.")


def _enlarge(img: Image.Image, size: int = VIEW_SIZE) -> Image.Image:
    img = img.convert("RGB")
    return img.resize((size, size), Image.NEAREST) if img.width < size else img


# --- Grad-CAM --------------------------------------------------------------------------------------

def target_choices(labels: Sequence[str]) -> list[str]:
    """Dropdown choices: the predicted class, or any class by name."""
    return [PREDICTED, *labels]


def gradcam_view(loaded: LoadedModel, img: Image.Image, target: str | None = None,
                 alpha: float = 0.5) -> tuple[Image.Image, str]:
    """A decoded image -> (Grad-CAM overlay on what the model sees, one-line markdown caption)."""
    cfg = loaded.config
    chosen = None if target in (None, "", PREDICTED) else target
    res = explain_image(loaded.model, cfg, img, chosen)
    shown = overlay(res.view, res.heatmap, alpha=alpha, size=max(VIEW_SIZE, cfg.input_size))
    where = ARCHITECTURES[cfg.architecture].gradcam_grid
    caption = (f"Grad-CAM for **{res.label}** ({'predicted' if chosen is None else 'chosen'}; "
               f"P = {res.probs[res.label]:.1%}), at {where}. Warm colours: evidence for {res.label}.")
    if res.raw_max <= 0:
        caption += f" No region adds evidence for {res.label}: the map is empty."
    return shown, caption


# --- confusion matrix and its gallery ------------------------------------------------------------

def confusion_frame(root: Path | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """metrics.json -> (confusion table: first column the true class, then one column per predicted
    class, counts; per-class accuracy table, in percent; note). Empty tables and a note when there
    is no metrics.json."""
    metrics = try_read_json(root, "metrics.json")
    if not isinstance(metrics, dict) or "confusion_matrix" not in metrics:
        return pd.DataFrame(), pd.DataFrame(), ("This run has no metrics.json (its final evaluation); write it with "
                                                f"`{EVALUATE_HINT.format(run=root or 'RUN_DIR')}`.")
    labels = [str(l) for l in metrics.get("labels") or range(len(metrics["confusion_matrix"]))]
    cm = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    table = pd.DataFrame(cm, columns=labels)
    table.insert(0, TRUE_COLUMN, labels)
    per_class = metrics.get("per_class_accuracy") or {}
    totals = cm.sum(axis=1)
    acc = pd.DataFrame({"class": labels,
                        "accuracy": [_percent(per_class.get(l)) for l in labels],
                        "images": totals.tolist()})
    note = (f"{metrics.get('split', 'validation')} split, {int(cm.sum())} images, accuracy "
            f"{metrics.get('accuracy', float('nan')):.2%}. Each cell: the count · its share of that row's "
            "(true class's) images; the colour is that share. Click a cell to see its images.")
    return table, acc, note


def _percent(value) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "n/a"


def confusion_heatmap(table: pd.DataFrame, colormap: str = "Blues"):
    """The confusion table as a heat map (a pandas Styler, which gr.Dataframe renders): each cell
    shows its count and its row-normalised rate (share of the true class's images), coloured by
    that rate on a fixed 0-1 scale, so 2 and 10 classes read the same way. The data stays counts."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    if table.empty:
        return table
    counts = table.drop(columns=[TRUE_COLUMN])
    rates = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)
    cmap = colormaps[colormap]

    def cell_style(rate: float) -> str:
        # Dark text on light cells, white text on dark ones.
        return f"background-color: {to_hex(cmap(0.05 + 0.9 * rate))}; color: {'white' if rate > 0.5 else 'black'}"

    styles = pd.DataFrame("", index=table.index, columns=table.columns)
    styles[counts.columns] = rates.map(cell_style)
    styler = table.style.apply(lambda _: styles, axis=None)
    for row in table.index:
        for col in counts.columns:
            text = f"{counts.at[row, col]} · {rates.at[row, col]:.0%}"
            styler = styler.format(lambda _v, _t=text: _t, subset=([row], [col]))
    return styler


def cell_from_select(index) -> tuple[int, int] | None:
    """gr.SelectData.index of the confusion table ([row, column]) -> (true, predicted) class ids;
    None for the label column."""
    try:
        row, col = (int(v) for v in index)
    except (TypeError, ValueError):
        return None
    if col < 1 or row < 0:
        return None
    return row, col - 1


def cell_gallery(root: Path | None, true_class: int, predicted_class: int, images: ValidationImages | None,
                 labels: Sequence[str], limit: int = GALLERY_LIMIT) -> tuple[list[tuple[Image.Image, str]], str]:
    """The validation images with that true and predicted class (predictions.json), most confident
    first: (gallery items (image, caption), markdown). Without the images, the markdown lists them."""
    preds = read_predictions(root)
    if preds is None:
        return [], _no_predictions(root)
    if not (0 <= true_class < preds.num_classes and 0 <= predicted_class < preds.num_classes):
        return [], "No such cell."
    rows = confusion_cell(preds, true_class, predicted_class)
    title = f"true **{labels[true_class]}**, predicted **{labels[predicted_class]}**: {len(rows)} image(s)"
    items, listed = [], []
    for r in rows[:limit]:
        index, conf = int(preds.indices[r]), float(preds.probabilities[r, predicted_class])
        # Short enough to fit under a thumbnail; the title above names the true and predicted class.
        caption = f"#{index} · {conf:.0%}"
        img = images.get(index) if images is not None else None
        if img is not None:
            items.append((_enlarge(img, 128), caption))
        listed.append(caption)
    text = title + (f" (the {limit} most confident shown)" if len(rows) > limit else "")
    if len(rows):
        text += f". Captions: image number in the split · P({labels[predicted_class]})."
    if len(items) < len(listed):
        why = images.error if images is not None and images.error else "the validation images are not available"
        text += f"\n\nNo thumbnails ({why}); the images, by position in the split: " + "; ".join(listed)
    return items, text


# --- occlusion playground --------------------------------------------------------------------------

def box_from_centre(cx: float, cy: float, size: float, input_size: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a size x size box centred at (cx, cy) in input pixels, kept inside."""
    size = int(max(1, min(round(size), input_size)))
    left = int(min(max(round(cx - size / 2), 0), input_size - size))
    top = int(min(max(round(cy - size / 2), 0), input_size - size))
    return top, left, size, size


def occlusion_probe(models: Sequence[tuple[str, LoadedModel]], img: Image.Image, box: tuple[int, int, int, int],
                    fill: str = "mean", class_name: str | None = None) -> tuple[Image.Image, pd.DataFrame]:
    """One erase box, several models (same preprocessing): (what they see with the box,
    table of P(class) without and with the box). class_name defaults to the last label (dog)."""
    import torch
    if not models:
        raise ValueError("no model to probe")
    cfg = models[0][1].config
    cls = cfg.labels.index(class_name) if class_name else cfg.num_classes - 1
    x = prepare(img, cfg, task_step=False)[0]
    erased = erase(x, box, cfg, fill)
    rows = []
    for name, loaded in models:
        with torch.inference_mode():
            loaded.model.eval()
            dev = next(loaded.model.parameters()).device
            p = logits_to_probs(loaded.model(torch.cat([x, erased]).to(dev)), loaded.config)[:, cls].cpu()
        rows.append({"model": name, f"P({cfg.labels[cls]})": round(float(p[0]), 4),
                     f"P({cfg.labels[cls]}) with the box": round(float(p[1]), 4),
                     "change": round(float(p[1] - p[0]), 4)})
    from models.predict import input_to_image
    view = input_to_image(erased[0], cfg).convert("RGB")
    top, left, h, w = box
    ImageDraw.Draw(view).rectangle([left, top, left + w - 1, top + h - 1], outline=(255, 255, 0), width=2)
    return _enlarge(view), pd.DataFrame(rows)


def probability_map_image(view: Image.Image, pmap: np.ndarray, alpha: float = 0.55,
                          colormap: str = "coolwarm") -> Image.Image:
    """P(class) per pixel (values in [0, 1], fixed scale) in colour over the image."""
    from matplotlib import colormaps
    base = np.asarray(view.convert("RGB").resize((pmap.shape[1], pmap.shape[0])), dtype=np.float32) / 255
    colour = colormaps[colormap](np.clip(pmap, 0, 1))[..., :3]
    return Image.fromarray(((base * (1 - alpha) + colour * alpha) * 255).round().astype(np.uint8))


def occlusion_sweep_view(models: Sequence[tuple[str, LoadedModel]], img: Image.Image, box: int | None = None,
                         stride: int | None = None, fill: str = "mean"
                         ) -> tuple[list[tuple[Image.Image, str]], pd.DataFrame]:
    """Sweep an erase box over the image for each model: (maps of P(last class) per pixel, where the
    box covers it (blue: cat, red: dog), with captions; summary table)."""
    from models.predict import input_to_image
    items, rows = [], []
    for name, loaded in models:
        cfg = loaded.config
        x = prepare(img, cfg, task_step=False)[0].to(next(loaded.model.parameters()).device)
        occ = occlusion_sweep(loaded.model, cfg, x, box=box, stride=stride, fill=fill)
        top, left, p_min = occ.most_sensitive()
        view = input_to_image(x[0].cpu(), cfg)
        items.append((_enlarge(probability_map_image(view, occ.pixel_map(cfg.input_size))),
                      f"{name}: P({occ.label}) {occ.base:.1%} unoccluded, lowest {p_min:.1%}"))
        rows.append({"model": name, f"P({occ.label})": round(occ.base, 4), "lowest with the box": round(p_min, 4),
                     "box at (top, left)": f"({top}, {left})", "box": occ.box,
                     "positions": int(occ.probs.size)})
    return items, pd.DataFrame(rows)


# --- decision threshold and calibration ---------------------------------------------------------

def threshold_report(root: Path | None, threshold: float, positive: int = 1) -> tuple[pd.DataFrame, str]:
    """Accuracy, precision and recall at `threshold` on P(positive) over the validation split."""
    preds = read_predictions(root)
    if preds is None:
        return pd.DataFrame(), _no_predictions(root)
    m = threshold_metrics(preds, threshold, positive)
    fmt = lambda v: "n/a" if v is None else f"{v:.2%}"  # noqa: E731
    table = pd.DataFrame([{"threshold": round(threshold, 3), "accuracy": fmt(m["accuracy"]),
                           "precision": fmt(m["precision"]), "recall": fmt(m["recall"]),
                           "true pos": m["tp"], "false pos": m["fp"], "false neg": m["fn"], "true neg": m["tn"]}])
    at_half = threshold_metrics(preds, 0.5, positive)["accuracy"]
    note = (f"Predict class {positive} when its probability is above {threshold:.2f}; {len(preds)} validation "
            f"images. At 0.50 (the model's own rule) accuracy is {fmt(at_half)}.")
    return table, note


def threshold_curve_frame(root: Path | None, positive: int = 1) -> pd.DataFrame:
    """Long frame (threshold, value, metric) of accuracy, precision and recall, for a line plot."""
    preds = read_predictions(root)
    if preds is None:
        return pd.DataFrame(columns=["threshold", "value", "metric"])
    rows = [(m["threshold"], m[k], k) for m in threshold_sweep(preds, positive=positive)
            for k in ("accuracy", "precision", "recall") if m[k] is not None]
    return pd.DataFrame(rows, columns=["threshold", "value", "metric"])


def reliability_figure(root: Path | None, n_bins: int = 10, class_index: int | None = None,
                       labels: Sequence[str] | None = None) -> tuple[Figure | None, str]:
    """Reliability diagram (accuracy vs confidence per bin, with the diagonal) and the ECE."""
    preds = read_predictions(root)
    if preds is None:
        return None, _no_predictions(root)
    rel = reliability(preds, n_bins=n_bins, class_index=class_index)
    fig = Figure(figsize=(4.8, 4.2), tight_layout=True)
    ax = fig.add_subplot(1, 1, 1)
    width = 1 / n_bins
    filled = [b for b in rel["bins"] if b["count"]]
    ax.bar([b["lo"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
           edgecolor="black", color="#6c8ebf", label="observed")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o", color="black", ms=3,
            label="mean confidence")
    what = ("confidence (top class)" if class_index is None
            else f"P({labels[class_index] if labels else class_index})")
    ax.set_xlabel(what)
    ax.set_ylabel("fraction correct" if class_index is None else "fraction that are "
                  f"{labels[class_index] if labels else class_index}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"ECE {rel['ece']:.3f} ({len(preds)} images)")
    ax.legend(loc="upper left", fontsize=8)
    note = (f"Expected calibration error: **{rel['ece']:.3f}** ({n_bins} equal-width bins, {rel['kind']}); "
            f"largest bin gap {rel['mce']:.3f}.")
    return fig, note


# --- top losses ------------------------------------------------------------------------------------

def top_losses_view(root: Path | None, labels: Sequence[str], images: ValidationImages | None, k: int = 16
                    ) -> tuple[list[tuple[Image.Image, str]], pd.DataFrame, str]:
    """The most confidently wrong validation images: (gallery items, table, note)."""
    preds = read_predictions(root)
    if preds is None:
        return [], pd.DataFrame(), _no_predictions(root)
    rows = top_losses(preds, k=k)
    items, table = [], []
    for r in rows:
        caption = f"#{r['index']} · {labels[r['label']]}→{labels[r['predicted']]}"   # details in the table
        img = images.get(r["index"]) if images is not None else None
        if img is not None:
            items.append((_enlarge(img, 128), caption))
        table.append({"index": r["index"], "true": labels[r["label"]], "predicted": labels[r["predicted"]],
                      "confidence": round(r["confidence"], 4), "P(true)": round(r["p_true"], 4),
                      "loss": round(r["loss"], 3)})
    wrong = int((~preds.correct).sum())
    note = f"{wrong} of {len(preds)} validation images are misclassified; the {len(rows)} most confident shown."
    if rows and len(items) < len(rows):
        why = images.error if images is not None and images.error else "the validation images are not available"
        note += f" No thumbnails: {why}."
    return items, pd.DataFrame(table), note


# --- Random Erasing comparison -------------------------------------------------------------------

def find_comparisons(runs_dir: Path | None) -> list[Path]:
    """comparison.json files written by training.compare under runs_dir/compare/*/."""
    if runs_dir is None or not (Path(runs_dir) / "compare").is_dir():
        return []
    return sorted((Path(runs_dir) / "compare").glob("*/comparison.json"))


def comparison_view(path: Path | None) -> tuple[str, Figure | None]:
    """comparison.json -> (markdown with the numbers and their uncertainty, figure: accuracy per seed
    with mean ± std per variant, and the paired difference per seed with its bootstrap CI)."""
    from analysis.stats import comparison_markdown
    data = try_read_json(Path(path).parent, Path(path).name) if path else None
    if not isinstance(data, dict) or "variants" not in data:
        return ("No comparison yet. Run `python -m training.compare --task catsdogs --seeds 0 1 2`: it trains "
                "both variants per seed from the same initial weights and writes comparison.json."), None
    try:
        text = comparison_markdown(data)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return f"comparison.json is not readable ({type(e).__name__}).", None
    fig = Figure(figsize=(8, 3.6), tight_layout=True)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    names = list(data["variants"])
    for i, name in enumerate(names):
        v = data["variants"][name]
        acc = np.asarray(v["accuracy"], dtype=float) * 100
        ax1.plot(np.full(len(acc), i), acc, "o", color="gray", alpha=0.7)
        ax1.errorbar([i + 0.15], [v["mean"] * 100], yerr=[[(v["std"] or 0) * 100]], fmt="s", capsize=6,
                     color="C0" if i == 0 else "C3")
    ax1.set_xticks(range(len(names)), names)
    ax1.set_xlim(-0.5, len(names) - 0.5)
    ax1.set_ylabel("validation accuracy (%)")
    ax1.set_title("per seed (dots), mean ± std")
    d = data["difference"]
    per_seed = np.asarray(d["per_seed"], dtype=float) * 100
    lo, hi = (c * 100 for c in d["ci"])
    ax2.axhline(0, color="black", lw=0.8)
    ax2.plot(np.zeros(len(per_seed)), per_seed, "o", color="gray", alpha=0.7)
    ax2.errorbar([0.15], [d["mean"] * 100], yerr=[[d["mean"] * 100 - lo], [hi - d["mean"] * 100]], fmt="s",
                 capsize=6, color="C2")
    ax2.set_xticks([0], [d["of"]])
    ax2.set_xlim(-0.5, 0.5)
    ax2.set_ylabel("accuracy difference (points)")
    ax2.set_title(f"paired difference, {int(d['level'] * 100)}% CI; McNemar p = {data['mcnemar']['p_value']:.3g}")
    return text, fig
