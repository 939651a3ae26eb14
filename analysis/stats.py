"""Numbers from a run's per-image predictions (predictions.json), and paired comparisons.

Pure functions on arrays, no model and no torch: the app (confusion gallery, threshold
slider, reliability diagram, top losses, the Random Erasing comparison) and
`training.compare` use the same code, so what the app shows is what the files say.

predictions.json (docs/run-directory.md):
    {"split": "test", "indices": [...], "labels": [...], "predicted": [...],
     "probabilities": [[p_0, ..., p_{K-1}], ...]}
`indices` are positions in the full validation split; rows are in evaluation order.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

COMPARISON_FILE = "comparison.json"


@dataclass(frozen=True)
class Predictions:
    indices: np.ndarray         # (N,) int: position of each image in the full validation split
    labels: np.ndarray          # (N,) int: true class
    predicted: np.ndarray       # (N,) int: predicted class (argmax of probabilities)
    probabilities: np.ndarray   # (N, K) float
    split: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.probabilities.shape[1])

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self) else float("nan")

    @classmethod
    def from_dict(cls, d: dict) -> "Predictions":
        """Validate and convert a predictions.json object; ValueError says what is wrong."""
        if not isinstance(d, dict):
            raise ValueError("predictions: expected a JSON object")
        missing = [k for k in ("indices", "labels", "predicted", "probabilities") if k not in d]
        if missing:
            raise ValueError(f"predictions: missing {', '.join(missing)}")
        try:
            indices, labels, predicted = (np.asarray(d[k], dtype=np.int64).reshape(-1)
                                          for k in ("indices", "labels", "predicted"))
            probs = np.asarray(d["probabilities"], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"predictions: not numeric ({e})") from e
        n = labels.shape[0]
        if probs.ndim != 2 or probs.shape[0] != n or indices.shape[0] != n or predicted.shape[0] != n:
            raise ValueError("predictions: indices, labels, predicted and probabilities differ in length")
        k = probs.shape[1]
        if n and (k < 2 or min(labels.min(), predicted.min()) < 0 or max(labels.max(), predicted.max()) >= k):
            raise ValueError("predictions: a class id is outside the probability columns")
        if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
            raise ValueError("predictions: probabilities must be finite and in [0, 1]")
        return cls(indices, labels, predicted, probs, split=str(d.get("split", "")))


def load_predictions(path: str | os.PathLike) -> Predictions:
    """predictions.json of a run directory (or the file itself); ValueError/OSError if unusable."""
    path = Path(path)
    return Predictions.from_dict(json.loads((path / "predictions.json" if path.is_dir() else path)
                                            .read_text(encoding="utf-8")))


def confusion_cell(preds: Predictions, true_class: int, predicted_class: int) -> np.ndarray:
    """Rows of `preds` with that true and predicted class, most confident first (ties: row order).

    `preds.indices[rows]` are the images' positions in the validation split.
    """
    rows = np.flatnonzero((preds.labels == true_class) & (preds.predicted == predicted_class))
    return rows[np.argsort(-preds.probabilities[rows, predicted_class], kind="stable")]


def reliability_bins(confidence, outcome, n_bins: int = 10) -> dict:
    """Equal-width bins over [0, 1]: per bin the count, mean confidence and observed frequency.

    A value c falls in bin i when edges[i] < c <= edges[i+1] (bin 0 also takes c = 0).
    Returns {"bins": [{"lo", "hi", "count", "confidence", "accuracy"}], "ece", "mce", "count"};
    ECE = sum over bins of (count / N) * |accuracy - confidence| (Guo et al. 2017); MCE the
    largest gap. Empty bins have None for confidence and accuracy.
    """
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    outcome = np.asarray(outcome, dtype=np.float64).reshape(-1)
    if confidence.shape != outcome.shape:
        raise ValueError("confidence and outcome differ in length")
    if n_bins < 1:
        raise ValueError("n_bins must be positive")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    n, count = len(confidence), np.bincount(which, minlength=n_bins)
    conf, acc = (np.bincount(which, v, n_bins) / np.maximum(count, 1) for v in (confidence, outcome))
    gaps = np.abs(acc - conf)[count > 0]
    bins = [{"lo": float(lo), "hi": float(hi), "count": int(c), "confidence": float(cf) if c else None,
             "accuracy": float(a) if c else None} for lo, hi, c, cf, a in zip(edges, edges[1:], count, conf, acc)]
    return {"bins": bins, "ece": float(count[count > 0] @ gaps / n) if n else None,
            "mce": float(gaps.max()) if n else None, "count": n}


def reliability(preds: Predictions, n_bins: int = 10, class_index: int | None = None) -> dict:
    """Reliability diagram + ECE of a run.

    class_index None: top-label calibration (confidence = max probability, outcome = the
    prediction is right). class_index k: P(k) against how often the label is k (for the binary
    model, k=1 gives the calibration of P(dog)).
    """
    if class_index is None:
        return reliability_bins(preds.probabilities.max(axis=1), preds.correct, n_bins)
    return reliability_bins(preds.probabilities[:, class_index], preds.labels == class_index, n_bins)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def threshold_metrics(preds: Predictions, threshold: float) -> dict:
    """Accuracy, precision, recall (and counts) when "positive" (class 1) means P(class 1) > threshold.

    Strictly greater, so that threshold 0.5 reproduces the model's own predictions (the binary
    model predicts class 1 when its logit is > 0, i.e. P > 0.5).
    """
    says, truth = preds.probabilities[:, 1] > threshold, preds.labels == 1
    tp, fp, fn, tn = (int((s & t).sum()) for s, t in ((says, truth), (says, ~truth), (~says, truth), (~says, ~truth)))
    # F1, the harmonic mean of precision and recall, is 2tp / (2tp + fp + fn); undefined without a true positive.
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "accuracy": _ratio(tp + tn, len(preds)), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp else None}


def threshold_sweep(preds: Predictions) -> list[dict]:
    """threshold_metrics at each threshold 0.00, 0.01, ..., 1.00, for a curve."""
    return [threshold_metrics(preds, float(t)) for t in np.round(np.linspace(0, 1, 101), 2)]


def top_losses(preds: Predictions, k: int = 16) -> list[dict]:
    """The k misclassified images with the highest cross-entropy -log P(true class), highest first:
    the most confidently wrong. Each row: row, index (position in the validation split), label,
    predicted, p_true, confidence (P of the predicted class), loss."""
    p_true = preds.probabilities[np.arange(len(preds)), preds.labels]
    loss = -np.log(np.clip(p_true, 1e-12, 1.0))
    rows = np.flatnonzero(~preds.correct)
    return [{"row": int(r), "index": int(preds.indices[r]), "label": int(preds.labels[r]),
             "predicted": int(preds.predicted[r]), "p_true": float(p_true[r]),
             "confidence": float(preds.probabilities[r, preds.predicted[r]]), "loss": float(loss[r])}
            for r in rows[np.argsort(-loss[rows], kind="stable")][:max(0, k)]]


# --- paired comparison -------------------------------------------------------------------------

def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); std is None for fewer than two values."""
    v = np.asarray(list(values), dtype=np.float64)
    return (None, None) if v.size == 0 else (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else None)


def discordant_counts(correct_a, correct_b) -> dict:
    """Paired outcomes: both right, only a right, only b right, both wrong."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("paired predictions differ in length")
    return {"both_correct": int((a & b).sum()), "only_a_correct": int((a & ~b).sum()),
            "only_b_correct": int((~a & b).sum()), "both_wrong": int((~a & ~b).sum())}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test: P-value of the binomial test of the discordant pairs.

    Under H0 (both models equally accurate), each of the n = only_a + only_b discordant pairs
    goes either way with probability 1/2; p = min(1, 2 * P(X <= min(only_a, only_b))),
    X ~ Binomial(n, 1/2). No discordant pairs (e.g. identical predictions) gives p = 1.
    Computed exactly with integers (math.comb), then divided once.
    """
    only_a, only_b = int(only_a), int(only_b)
    if only_a < 0 or only_b < 0:
        raise ValueError("counts must be non-negative")
    n = only_a + only_b
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n)


def bootstrap_differences(groups: Sequence[tuple[np.ndarray, np.ndarray]], *, replicates: int = 10_000,
                          seed: int = 0) -> np.ndarray:
    """Bootstrap replicates (replicates,) of the mean over groups of (accuracy of b - accuracy of a).

    `groups` holds one (correct_a, correct_b) pair of boolean arrays per seed, paired by image.
    Each replicate draws the groups (seeds) with replacement (when there are at least two), then,
    within each drawn group, its images with replacement, keeping the pairs together; the statistic
    is the mean of the per-group accuracy differences.
    Resampling a group's images only changes how many of its "only b right" and "only a right"
    pairs are drawn, so each (replicate, drawn group) is one multinomial draw over
    (only b right, only a right, same outcome): the same distribution as resampling rows, at a
    cost independent of the number of images. Deterministic for a given `seed`.
    """
    if not groups:
        raise ValueError("no paired predictions")
    if replicates < 1:
        raise ValueError("replicates must be positive")
    rng = np.random.default_rng(seed)
    k = len(groups)
    counts = [discordant_counts(a, b) for a, b in groups]
    sizes = [sum(c.values()) for c in counts]
    if 0 in sizes:
        raise ValueError("a group has no images")
    chosen = rng.integers(0, k, size=(replicates, k)) if k > 1 else np.zeros((replicates, 1), dtype=int)
    diffs = np.empty((replicates, k), dtype=np.float64)
    for g, (c, n) in enumerate(zip(counts, sizes)):
        p = [c["only_b_correct"] / n, c["only_a_correct"] / n, (c["both_correct"] + c["both_wrong"]) / n]
        draws = rng.multinomial(n, p, size=(replicates, k))                   # (R, k, 3)
        mask = chosen == g
        diffs[mask] = ((draws[..., 0] - draws[..., 1]) / n)[mask]
    return diffs.mean(axis=1)


def paired_comparison(pairs: Sequence[tuple[int, Predictions, Predictions]], names: tuple[str, str] = ("a", "b"),
                      *, replicates: int = 10_000, level: float = 0.95, bootstrap_seed: int = 0) -> dict:
    """Compare two variants trained once per seed: `pairs` = [(seed, preds_a, preds_b), ...].

    Each pair must cover the same images in the same order (same validation indices).
    Returns per-variant accuracies with mean and std over seeds, the per-seed and mean paired
    difference (b - a) with its percentile bootstrap CI at `level` (`bootstrap_differences` resamples),
    and McNemar's exact test on the per-image outcomes pooled over seeds.
    """
    if not pairs:
        raise ValueError("no pairs to compare")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    name_a, name_b = names
    for seed, pa, pb in pairs:
        if len(pa) != len(pb) or not np.array_equal(pa.indices, pb.indices):
            raise ValueError(f"seed {seed}: the two runs were evaluated on different images")
        if not np.array_equal(pa.labels, pb.labels):
            raise ValueError(f"seed {seed}: the two runs disagree about the labels of the same images")
    acc_a, acc_b = [pa.accuracy for _, pa, _ in pairs], [pb.accuracy for _, _, pb in pairs]
    diffs = [b - a for a, b in zip(acc_a, acc_b)]
    groups = [(pa.correct, pb.correct) for _, pa, pb in pairs]
    pooled = discordant_counts(*map(np.concatenate, zip(*groups)))   # every image of every seed
    stat = bootstrap_differences(groups, replicates=replicates, seed=bootstrap_seed)
    lo, hi = (float(q) for q in np.quantile(stat, [(1 - level) / 2, (1 + level) / 2]))
    method = "percentile; seeds resampled, then images within each seed (paired)" if len(groups) > 1 \
        else "percentile; images resampled (paired)"
    variant = lambda acc: dict(zip(("accuracy", "mean", "std"), (acc, *mean_std(acc))))  # noqa: E731
    return {
        "seeds": [int(seed) for seed, _, _ in pairs],
        "variants": {name_a: variant(acc_a), name_b: variant(acc_b)},
        "difference": {"of": f"{name_b} - {name_a}", "per_seed": diffs, **dict(zip(("mean", "std"), mean_std(diffs))),
                       "ci": [lo, hi], "level": level,
                       "bootstrap": {"replicates": replicates, "seed": bootstrap_seed, "method": method}},
        "mcnemar": {"pairs": int(sum(pooled.values())), "both_correct": pooled["both_correct"],
                    "both_wrong": pooled["both_wrong"], f"only_{name_a}_correct": pooled["only_a_correct"],
                    f"only_{name_b}_correct": pooled["only_b_correct"],
                    "p_value": mcnemar_exact(pooled["only_a_correct"], pooled["only_b_correct"]),
                    "test": "exact two-sided binomial test on discordant pairs, pooled over seeds"},
        "images_per_seed": [len(pa) for _, pa, _ in pairs],
    }


def _pct(v: float | None, signed: bool = False) -> str:
    return "n/a" if v is None else f"{v * 100:+.2f}" if signed else f"{v * 100:.2f}"


def comparison_markdown(comparison: dict) -> str:
    """A short markdown summary of `paired_comparison`'s result (percentage points)."""
    (name_a, _), (name_b, _) = variants = list(comparison["variants"].items())
    d, m, seeds = comparison["difference"], comparison["mcnemar"], comparison["seeds"]
    lines = ["| variant | accuracy per seed (%) | mean ± std (%) |", "| --- | --- | --- |"]
    for name, v in variants:
        std = f" ± {_pct(v['std'])}" if v["std"] is not None else " (one seed)"
        lines.append(f"| {name} | {', '.join(f'{a * 100:.2f}' for a in v['accuracy'])} | {_pct(v['mean'])}{std} |")
    lines += [
        "",
        f"**Paired difference ({d['of']})**, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}): "
        f"{_pct(d['mean'], True)} points, {int(d['level'] * 100)}% bootstrap CI "
        f"[{_pct(d['ci'][0], True)}, {_pct(d['ci'][1], True)}] "
        f"({d['bootstrap']['replicates']} replicates, {d['bootstrap']['method']}).",
        "",
        f"**McNemar's exact test** on {m['pairs']} paired image predictions (pooled over seeds): "
        f"only {name_a} right {m[f'only_{name_a}_correct']}, only {name_b} right {m[f'only_{name_b}_correct']}, "
        f"p = {m['p_value']:.3g}.",
    ]
    return "\n".join(lines) + "\n"


def comparison_for_run(run_dir: str | os.PathLike) -> dict | None:
    """The comparison.json that `training.compare` wrote for this run, or None.

    compare lays its runs out as OUT/<task>[-re]/seed-<s>/ and writes OUT/comparison.json,
    which lists them; a run it does not list (or a folder with no comparison) has none.
    """
    from models.jsonfile import try_read_json
    run_dir = Path(run_dir)
    found = try_read_json(run_dir.parent.parent, COMPARISON_FILE)
    if not isinstance(found, dict):
        return None
    listed = {path for pair in (found.get("runs") or {}).values() if isinstance(pair, dict)
              for key, path in pair.items() if key != "init_sha256"}
    return found if f"{run_dir.parent.name}/{run_dir.name}" in listed else None
