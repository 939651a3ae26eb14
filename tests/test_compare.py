"""The Random Erasing comparison: statistics against hand-computed values, and the CLI end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.stats import (Predictions, bootstrap_differences, comparison_markdown, discordant_counts,
                          mcnemar_exact, mean_std, paired_comparison)

# A small fixed table of paired per-image outcomes (1 = right), two seeds of ten images each.
#   seed 0: baseline 6/10, RE 8/10; only baseline right: image 5; only RE right: 6, 7, 8
#   seed 1: baseline 7/10, RE 8/10; only RE right: image 7
TABLE = {
    0: ([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 1, 1, 1, 0]),
    1: ([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
}


def predictions_from_outcomes(correct: list[int], indices=None) -> Predictions:
    """Binary predictions with these right/wrong outcomes (labels alternate cat, dog)."""
    n = len(correct)
    labels = [i % 2 for i in range(n)]
    predicted = [lab if ok else 1 - lab for lab, ok in zip(labels, correct)]
    probs = [[0.2, 0.8] if p == 1 else [0.8, 0.2] for p in predicted]
    return Predictions.from_dict({"indices": indices or list(range(100, 100 + n)), "labels": labels,
                                  "predicted": predicted, "probabilities": probs, "split": "test"})


def table_pairs():
    return [(seed, predictions_from_outcomes(a), predictions_from_outcomes(b)) for seed, (a, b) in TABLE.items()]


# --- statistics by hand ------------------------------------------------------------------------

def test_mean_std_by_hand():
    assert mean_std([0.6, 0.7]) == (pytest.approx(0.65), pytest.approx(0.05 * math.sqrt(2)))
    assert mean_std([0.8]) == (0.8, None)
    assert mean_std([]) == (None, None)


def test_discordant_counts_by_hand():
    a, b = TABLE[0]
    assert discordant_counts(a, b) == {"both_correct": 5, "only_a_correct": 1, "only_b_correct": 3, "both_wrong": 1}
    with pytest.raises(ValueError):
        discordant_counts([1, 0], [1])


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0                       # identical predictions
    assert mcnemar_exact(5, 5) == 1.0                       # balanced: capped at 1
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 2 ** 5)          # 0.375
    assert mcnemar_exact(4, 1) == mcnemar_exact(1, 4)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)      # 0.109375
    assert 0 < mcnemar_exact(100, 300) < 1e-20             # exact integers: no overflow or underflow to 0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_mcnemar_agrees_with_scipy():
    from scipy import stats
    for b, c in ((1, 4), (3, 17), (12, 30), (40, 41)):
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_on_identical_predictions_is_one():
    preds = predictions_from_outcomes([1, 0, 1, 1, 0, 1])
    result = paired_comparison([(0, preds, preds), (1, preds, preds)], ("baseline", "random-erasing"),
                               replicates=500)
    assert result["mcnemar"]["p_value"] == 1.0
    assert result["mcnemar"]["only_baseline_correct"] == result["mcnemar"]["only_random-erasing_correct"] == 0
    assert result["difference"]["mean"] == 0 and result["difference"]["ci"] == [0.0, 0.0]


def test_bootstrap_degenerate_cases_by_hand():
    same = (np.array([1, 0, 1], bool), np.array([1, 0, 1], bool))
    all_better = (np.zeros(4, bool), np.ones(4, bool))
    ci = lambda pairs, replicates: paired_comparison(  # noqa: E731
        [(seed, *(predictions_from_outcomes(list(map(int, c))) for c in pair)) for seed, pair in enumerate(pairs)],
        replicates=replicates)["difference"]["ci"]
    assert ci([same], 1000) == [0.0, 0.0]
    assert ci([all_better], 1000) == [1.0, 1.0]
    # Groups resampled: mean of two draws from {1, 0} is 0 (1/4), 0.5 (1/2) or 1 (1/4) -> 95% CI [0, 1].
    stat = bootstrap_differences([all_better, same], replicates=20000, seed=1)
    assert set(np.unique(stat)) == {0.0, 0.5, 1.0}
    assert np.mean(stat == 0.5) == pytest.approx(0.5, abs=0.02)
    assert ci([all_better, same], 20000) == [0.0, 1.0]
    with pytest.raises(ValueError, match="level"):
        paired_comparison([(0, *(predictions_from_outcomes(list(map(int, c))) for c in same))], level=1.0)
    # Two images with differences +1 and 0: resampled means 0, 0.5, 1 with 1/4, 1/2, 1/4.
    two = (np.array([0, 1], bool), np.array([1, 1], bool))
    stat = bootstrap_differences([two], replicates=20000, seed=2)
    assert [np.mean(stat == v) for v in (0, 0.5, 1)] == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_bootstrap_matches_resampling_images_directly():
    """The multinomial shortcut has the distribution of resampling rows: for seed 0 of the table the
    per-image differences are +1 (x3), -1 (x1), 0 (x6): mean 0.2, variance of the mean 0.36/10."""
    a, b = (np.array(v, bool) for v in TABLE[0])
    stat = bootstrap_differences([(a, b)], replicates=40000, seed=3)
    assert stat.mean() == pytest.approx(0.2, abs=0.005)
    assert stat.std() == pytest.approx(math.sqrt(0.036), rel=0.03)
    rng = np.random.default_rng(4)
    d = b.astype(int) - a.astype(int)
    direct = d[rng.integers(0, 10, size=(40000, 10))].mean(axis=1)
    assert np.quantile(stat, [0.025, 0.5, 0.975]) == pytest.approx(np.quantile(direct, [0.025, 0.5, 0.975]),
                                                                    abs=0.1 + 1e-9)


def test_paired_comparison_of_the_fixed_table_by_hand():
    result = paired_comparison(table_pairs(), ("baseline", "random-erasing"), replicates=4000, bootstrap_seed=7)
    assert result["seeds"] == [0, 1] and result["images_per_seed"] == [10, 10]
    base, erase = result["variants"]["baseline"], result["variants"]["random-erasing"]
    assert base["accuracy"] == [pytest.approx(0.6), pytest.approx(0.7)]
    assert erase["accuracy"] == [pytest.approx(0.8), pytest.approx(0.8)]
    assert base["mean"] == pytest.approx(0.65) and base["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert erase["mean"] == pytest.approx(0.8) and erase["std"] == pytest.approx(0.0)
    d = result["difference"]
    assert d["of"] == "random-erasing - baseline"
    assert d["per_seed"] == [pytest.approx(0.2), pytest.approx(0.1)]
    assert d["mean"] == pytest.approx(0.15) and d["std"] == pytest.approx(0.0707107, rel=1e-5)
    # The CI against a bootstrap written directly: draw the two seeds with replacement, then each
    # drawn seed's ten images with replacement, mean of the accuracy differences. The statistic
    # moves in steps of 0.05 (two seeds of ten images): the two may differ by one step.
    lo, hi = d["ci"]
    rng = np.random.default_rng(11)
    diffs = [np.array(b) - np.array(a) for a, b in TABLE.values()]
    direct = [np.mean([diffs[s][rng.integers(0, 10, 10)].mean() for s in rng.integers(0, 2, 2)])
              for _ in range(4000)]
    direct_lo, direct_hi = np.quantile(direct, [0.025, 0.975])
    assert lo == pytest.approx(direct_lo, abs=0.05 + 1e-9) and hi == pytest.approx(direct_hi, abs=0.05 + 1e-9)
    assert lo < d["mean"] < hi
    again = paired_comparison(table_pairs(), ("baseline", "random-erasing"), replicates=4000, bootstrap_seed=7)
    assert again["difference"]["ci"] == d["ci"]                                  # seeded
    m = result["mcnemar"]
    assert (m["pairs"], m["both_correct"], m["both_wrong"]) == (20, 12, 3)
    assert (m["only_baseline_correct"], m["only_random-erasing_correct"]) == (1, 4)
    assert m["p_value"] == pytest.approx(0.375)
    text = comparison_markdown(result)
    assert "65.00 ± 7.07" in text and "80.00 ± 0.00" in text and "+15.00 points" in text
    assert "p = 0.375" in text


def test_paired_comparison_refuses_unpaired_images():
    a = predictions_from_outcomes([1, 0, 1])
    b = predictions_from_outcomes([1, 1, 1], indices=[7, 8, 9])
    with pytest.raises(ValueError, match="different images"):
        paired_comparison([(0, a, b)])


# --- compare_runs on hand-written run folders (no training) --------------------------------------

def write_fake_run(folder, seed, variant, correct, init="abc"):
    preds = predictions_from_outcomes(correct)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "task": "catsdogs", "variant": variant, "seed": seed, "init_sha256": init, "limit_train": None,
        "limit_val": None, "recipe": {"epochs": 3}, "dataset": {"val_split": "test"}}))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": preds.accuracy}))
    (folder / "predictions.json").write_text(json.dumps({
        "split": "test", "indices": preds.indices.tolist(), "labels": preds.labels.tolist(),
        "predicted": preds.predicted.tolist(), "probabilities": preds.probabilities.tolist()}))


def test_compare_runs_reads_the_pairs_and_checks_the_initial_weights(tmp_path):
    from training.compare import compare_runs, run_dir, summary_markdown
    for seed, (a, b) in TABLE.items():
        write_fake_run(run_dir(tmp_path, "catsdogs", "baseline", seed), seed, "baseline", a)
        write_fake_run(run_dir(tmp_path, "catsdogs", "random-erasing", seed), seed, "random-erasing", b)
    result = compare_runs(tmp_path, "catsdogs", [0, 1], replicates=500)
    assert result["mcnemar"]["p_value"] == pytest.approx(0.375)
    assert result["runs"]["1"] == {"baseline": "catsdogs/seed-1", "random-erasing": "catsdogs-re/seed-1",
                                   "init_sha256": "abc"}
    assert result["epochs"] == 3 and "2 seed(s), 3 epoch(s)" in summary_markdown(result)
    cfg_path = run_dir(tmp_path, "catsdogs", "random-erasing", 1) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["init_sha256"] = "other"
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SystemExit, match="same initial weights"):
        compare_runs(tmp_path, "catsdogs", [0, 1], replicates=10)


# --- the CLI end to end -----------------------------------------------------------------------

def test_compare_cli_end_to_end_and_resumable(catsdogs_dir, tmp_path, capsys):
    """2 seeds x (baseline, Random Erasing) x 1 epoch of ResNet50 on 2 images: one command."""
    from training.compare import get_args_parser, main
    out = tmp_path / "cmp"
    argv = ["--task", "catsdogs", "--seeds", "0", "1", "--epochs", "1", "--data-dir", str(catsdogs_dir),
            "--limit-train", "2", "--limit-val", "3", "--batch-size", "2", "--device", "cpu", "--workers", "1",
            "--bootstrap", "500", "--no-progress", "--out", str(out)]
    result = main(get_args_parser().parse_args(argv))
    for seed in (0, 1):
        base = json.loads((out / "catsdogs" / f"seed-{seed}" / "config.json").read_text())
        erase = json.loads((out / "catsdogs-re" / f"seed-{seed}" / "config.json").read_text())
        assert base["variant"] == "baseline" and erase["variant"] == "random-erasing"
        assert base["seed"] == erase["seed"] == seed
        assert base["init_sha256"] == erase["init_sha256"] == result["runs"][str(seed)]["init_sha256"]
    assert result["runs"]["0"]["init_sha256"] != result["runs"]["1"]["init_sha256"]
    stored = json.loads((out / "comparison.json").read_text())
    assert stored["seeds"] == [0, 1] and stored["epochs"] == 1
    assert set(stored["variants"]) == {"baseline", "random-erasing"}
    assert stored["mcnemar"]["pairs"] == sum(stored["images_per_seed"])
    # McNemar's exact p from the stored discordant counts, by scipy (an independent implementation).
    from scipy import stats
    only = (stored["mcnemar"]["only_baseline_correct"], stored["mcnemar"]["only_random-erasing_correct"])
    expected_p = stats.binomtest(only[0], sum(only), 0.5).pvalue if sum(only) else 1.0
    assert stored["mcnemar"]["p_value"] == pytest.approx(expected_p, rel=1e-9)
    lo, hi = stored["difference"]["ci"]
    assert lo <= hi
    assert "McNemar" in (out / "comparison.md").read_text()
    # Every compared run's card shows the comparison, read from comparison.json.
    from huggingface_hub import ModelCard
    from analysis.stats import comparison_markdown
    for path in ("catsdogs/seed-0", "catsdogs-re/seed-1"):
        card = ModelCard.load(out / path / "README.md")
        assert "## Baseline vs Random Erasing" in card.text
        assert comparison_markdown(stored) in card.text

    # Again: every run is finished, nothing is trained.
    capsys.readouterr()
    weights = out / "catsdogs-re" / "seed-1" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = main(get_args_parser().parse_args(argv))
    assert capsys.readouterr().out.count("finished, kept") == 4
    assert weights.stat().st_mtime_ns == before and again["variants"] == result["variants"]

    # An unfinished run (checkpoint, no release weights) is continued with --resume.
    weights.unlink()
    main(get_args_parser().parse_args(argv))
    assert "seed 1 random-erasing: continuing" in capsys.readouterr().out
    assert weights.is_file()
    resumed = json.loads((out / "catsdogs-re" / "seed-1" / "config.json").read_text())
    assert resumed["init_sha256"] == result["runs"]["1"]["init_sha256"]

    # Other settings for an existing comparison folder are refused, naming the difference.
    from training.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="different run \\(recipe.epochs: checkpoint 1, now 2\\)"):
        main(get_args_parser().parse_args([*argv, "--epochs", "2"]))
    # ... and so they are when a finished run's checkpoint was deleted since: its config.json decides.
    for checkpoint in out.glob("*/seed-*/checkpoint.pt"):
        checkpoint.unlink()
    with pytest.raises(CheckpointError, match="config.json: was written for a different run \\(recipe.epochs: "
                                              "checkpoint 1, now 2\\)"):
        main(get_args_parser().parse_args([*argv, "--epochs", "2"]))
