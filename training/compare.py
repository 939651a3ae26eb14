"""Baseline vs Random Erasing, several seeds, one command: is the difference real?

    python -m training.compare --task catsdogs --seeds 0 1 2 [--epochs N] [--out runs/compare/catsdogs]

For each seed, trains the baseline and the Random Erasing model with `training.train` from
the same initial weights (same seed: same init_sha256, same data order, crops and flips;
they differ only in the erasing), into

    OUT/<task>/seed-<s>/        baseline
    OUT/<task>-re/seed-<s>/     Random Erasing

(the runs/ layout, so `python app.py --runs OUT` serves them too). Resumable: a finished run
(model.safetensors present) is kept as it is, an interrupted one is continued with --resume,
so running the same command again picks up where it stopped; seeds can be added later.

Then writes OUT/comparison.json and OUT/comparison.md (analysis/stats.py): accuracy per seed
and variant with mean ± std, the paired difference (Random Erasing - baseline) with a
bootstrap confidence interval (seeds and images resampled, seeded), and McNemar's exact test
on the paired per-image predictions (predictions.json of each pair, the same validation
images), pooled over seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from models.artifact import CONFIG_FILE, WEIGHTS_FILE
from models.atomic import atomic_write, atomic_write_json
from models.tasks import BASELINE, RANDOM_ERASING, TASKS, Variant
from analysis.stats import COMPARISON_FILE, comparison_markdown, load_predictions, paired_comparison
from training.checkpoint import CHECKPOINT_FILE
from training.precision import resolve_device, set_torch_flags
from training.run_config import RunConfig, options, resolve

VARIANTS = (BASELINE, RANDOM_ERASING)
SUMMARY_FILE = "comparison.md"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train baseline and Random Erasing for several seeds and compare them.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), help="default: the first task whose app compares the two variants",
                   default=next(name for name, task in TASKS.items() if RANDOM_ERASING in task.variants))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one baseline/RE pair per seed")
    p.add_argument("--epochs", type=int, help="epochs (default: the task's recipe)")
    p.add_argument("--batch-size", type=int, help="images per step (default: the task's recipe)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the task's recipe)")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--out", help="comparison folder (default: runs/compare/<task>)")
    p.add_argument("--limit-train", type=int, help="train on a seeded subset of N images (smoke runs)")
    p.add_argument("--limit-val", type=int, help="evaluate on a seeded subset of N images")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--workers", type=int, default=2, help="processes decoding image files")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap replicates for the CI")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the interval")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, summary lines only")
    return p


def run_dir(out: Path, task: str, variant: Variant, seed: int) -> Path:
    """OUT/<task>[-re]/seed-<s>: the runs/ layout, so the app serves a comparison folder too."""
    return out / Variant(variant).task_folder(task) / f"seed-{seed}"


def run_config(args, variant: str, seed: int, folder: Path, resume: bool) -> RunConfig:
    """The RunConfig of one (variant, seed) run of this comparison."""
    return resolve(options(task=args.task, seed=seed, out=folder, data_dir=args.data_dir, device=args.device,
                           workers=args.workers, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           limit_train=args.limit_train, limit_val=args.limit_val,
                           random_erasing=True if variant == RANDOM_ERASING else None,
                           resume="auto" if resume else None, no_progress=args.no_progress))


def mismatches(config: dict, args, variant: str, seed: int) -> list[str]:
    """What a finished run's config.json says differently from this command."""
    recipe = config.get("recipe") or {}
    wanted = {"task": (config.get("task"), args.task), "variant": (config.get("variant"), variant),
              "seed": (config.get("seed"), seed),
              "limit_train": (config.get("limit_train"), args.limit_train),
              "limit_val": (config.get("limit_val"), args.limit_val)}
    if args.epochs is not None:
        wanted["epochs"] = (recipe.get("epochs"), args.epochs)
    if args.batch_size is not None:
        wanted["batch_size"] = (recipe.get("batch_size"), args.batch_size)
    if args.lr is not None:
        wanted["lr"] = ((recipe.get("optimizer") or {}).get("lr"), args.lr)
    return [f"{k} {have!r} (asked {want!r})" for k, (have, want) in wanted.items() if have != want]


def ensure_run(args, variant: str, seed: int, out: Path) -> Path:
    """Train, continue or keep the run of (variant, seed); returns its folder."""
    from training.train import run
    folder = run_dir(out, args.task, variant, seed)
    if (folder / WEIGHTS_FILE).is_file():
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        differ = mismatches(config, args, variant, seed)
        if differ:
            raise SystemExit(f"{folder} holds a finished run with other settings: {'; '.join(differ)}. "
                             f"Use the same settings, or another --out")
        print(f"seed {seed} {variant}: finished, kept ({folder})", flush=True)
        return folder
    resume = (folder / CHECKPOINT_FILE).is_file()
    print(f"seed {seed} {variant}: {'continuing' if resume else 'training'} in {folder}", flush=True)
    run(run_config(args, variant, seed, folder, resume))
    if not (folder / WEIGHTS_FILE).is_file():   # stopped before the end (a signal, a full disk)
        raise SystemExit(f"{folder}: the run did not finish; run the same command again to continue")
    return folder


def read_run(folder: Path) -> dict:
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {"config": config, "metrics": metrics, "predictions": load_predictions(folder)}


def compare_runs(out: Path, task: str, seeds: list[int], *, replicates: int = 10_000, level: float = 0.95) -> dict:
    """comparison.json's content from the finished runs under `out` (no training)."""
    pairs, runs = [], {}
    for seed in seeds:
        base = read_run(run_dir(out, task, BASELINE, seed))
        erase = read_run(run_dir(out, task, RANDOM_ERASING, seed))
        init_b, init_e = base["config"].get("init_sha256"), erase["config"].get("init_sha256")
        if not init_b or init_b != init_e:
            raise SystemExit(f"seed {seed}: the baseline and Random Erasing runs did not start from the same "
                             f"initial weights (init_sha256 {init_b} vs {init_e}); the comparison would be "
                             f"meaningless")
        for name, run in ((BASELINE, base), (RANDOM_ERASING, erase)):
            if abs(run["predictions"].accuracy - run["metrics"]["accuracy"]) > 1e-9:
                raise SystemExit(f"seed {seed} {name}: predictions.json and metrics.json disagree")
        pairs.append((seed, base["predictions"], erase["predictions"]))
        runs[str(seed)] = {BASELINE: run_dir(out, task, BASELINE, seed).relative_to(out).as_posix(),
                           RANDOM_ERASING: run_dir(out, task, RANDOM_ERASING, seed).relative_to(out).as_posix(),
                           "init_sha256": init_b}
    stats = paired_comparison(pairs, (BASELINE, RANDOM_ERASING), replicates=replicates, level=level)
    first = read_run(run_dir(out, task, BASELINE, seeds[0]))["config"]
    return {"task": task, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "epochs": first["recipe"]["epochs"], "limit_train": first.get("limit_train"),
            "limit_val": first.get("limit_val"), "split": first["dataset"]["val_split"],
            "runs": runs, **stats}


def summary_markdown(comparison: dict) -> str:
    head = (f"# Baseline vs Random Erasing: {comparison['task']}\n\n"
            f"{len(comparison['seeds'])} seed(s), {comparison['epochs']} epoch(s) each, "
            f"{comparison['split']} split ({', '.join(map(str, comparison['images_per_seed']))} images per seed). "
            f"Both variants of a seed start from the same initial weights and see the same batches.\n\n")
    return head + comparison_markdown(comparison)


def main(args) -> dict:
    seeds = list(dict.fromkeys(args.seeds))
    out = Path(args.out) if args.out else Path("runs") / "compare" / args.task
    out.mkdir(parents=True, exist_ok=True)
    set_torch_flags(resolve_device(args.device))
    for seed in seeds:
        for variant in VARIANTS:
            ensure_run(args, variant, seed, out)
    comparison = compare_runs(out, args.task, seeds, replicates=args.bootstrap, level=args.level)
    atomic_write_json(out / COMPARISON_FILE, comparison)
    from cards import write_card
    for pair in comparison["runs"].values():   # each run's card now shows the comparison
        for variant in VARIANTS:
            write_card(out / pair[variant], comparison=comparison)
    text = summary_markdown(comparison)
    atomic_write(out / SUMMARY_FILE, lambda p: Path(p).write_text(text, encoding="utf-8"))
    print(text)
    print(f"written: {out / COMPARISON_FILE}, {out / SUMMARY_FILE}")
    return comparison


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from training.checkpoint import CheckpointError
    try:
        main(get_args_parser().parse_args())
    except CheckpointError as e:
        raise SystemExit(str(e))
