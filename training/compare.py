"""Baseline vs Random Erasing, several seeds, one command: is the difference real?

    python -m training.compare --task catsdogs --seeds 0 1 2 [--epochs N] [--out runs/compare/catsdogs]

For each seed, trains both variants with `training.train` from the same initial weights into
OUT/<task>/seed-<s> and OUT/<task>-re/seed-<s> (the runs/ layout, so `python app.py --runs OUT`
serves them too), keeping finished runs and continuing interrupted ones; then writes
OUT/comparison.json and OUT/comparison.md (analysis/stats.py). The study and the file:
docs/see-why.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.artifact import CONFIG_FILE, WEIGHTS_FILE
from models.atomic import atomic_write_json, atomic_write_text
from models.jsonfile import read_json
from models.tasks import BASELINE, RANDOM_ERASING, TASKS, Variant
from analysis.stats import COMPARISON_FILE, comparison_markdown, load_predictions, paired_comparison
from training.precision import resolve_device, set_torch_flags
from training.checkpoint import CHECKPOINT_FILE, CheckpointError, check_resumable
from training.cli import nonnegative_int, positive_int, run_cli
from training.data import DatasetError
from training.divergence import DivergedError
from training.record import now_utc
from training.run_config import HelpFormatter, RunConfig, add_shared_flags, options, resolve

VARIANTS = (BASELINE, RANDOM_ERASING)
SUMMARY_FILE = "comparison.md"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.compare", formatter_class=HelpFormatter,
                                description="Train baseline and Random Erasing for several seeds and compare them.")
    p.add_argument("--task", choices=list(TASKS), help="default: the first task whose app compares the two variants",
                   default=next(name for name, task in TASKS.items() if RANDOM_ERASING in task.variants))
    p.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2], help="one baseline/RE pair per seed")
    add_shared_flags(p)
    p.add_argument("--out", help="comparison folder (default: runs/compare/<task>)")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="processes decoding image files")
    p.add_argument("--bootstrap", type=positive_int, default=10_000, help="bootstrap replicates for the CI")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the interval")
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


def ensure_run(args, variant: str, seed: int, out: Path) -> Path:
    """Train, continue or keep the run of (variant, seed); returns its folder."""
    from training.train import run
    folder = run_dir(out, args.task, variant, seed)
    resume = (folder / CHECKPOINT_FILE).is_file()
    # A run there (finished or not) with other settings is refused, naming them (training.checkpoint).
    cfg = run_config(args, variant, seed, folder, resume)
    if (folder / WEIGHTS_FILE).is_file():
        if not resume:   # its checkpoint deleted since (they are large): its config.json's settings decide
            check_resumable({"config": read_json(folder / CONFIG_FILE)}, cfg.settings(), folder / CONFIG_FILE)
        print(f"seed {seed} {variant}: finished, kept ({folder})", flush=True)
        return folder
    print(f"seed {seed} {variant}: {'continuing' if resume else 'training'} in {folder}", flush=True)
    run(cfg)
    if not (folder / WEIGHTS_FILE).is_file():   # stopped before the end (a signal, a full disk)
        raise SystemExit(f"{folder}: the run did not finish; run the same command again to continue")
    return folder


def read_run(folder: Path) -> dict:
    return {"config": read_json(folder / CONFIG_FILE), "metrics": read_json(folder / "metrics.json"),
            "predictions": load_predictions(folder)}


def compare_runs(out: Path, task: str, seeds: list[int], *, replicates: int = 10_000, level: float = 0.95) -> dict:
    """comparison.json's content from the finished runs under `out` (no training)."""
    pairs, runs = [], {}
    for seed in seeds:
        folders = {variant: run_dir(out, task, variant, seed) for variant in VARIANTS}
        base, erase = (read_run(folders[variant]) for variant in VARIANTS)
        init_b, init_e = base["config"].get("init_sha256"), erase["config"].get("init_sha256")
        if not init_b or init_b != init_e:
            raise SystemExit(f"seed {seed}: the baseline and Random Erasing runs did not start from the same "
                             f"initial weights (init_sha256 {init_b} vs {init_e}); the comparison would be "
                             f"meaningless")
        for name, run in ((BASELINE, base), (RANDOM_ERASING, erase)):
            if abs(run["predictions"].accuracy - run["metrics"]["accuracy"]) > 1e-9:
                raise SystemExit(f"seed {seed} {name}: predictions.json and metrics.json disagree")
        pairs.append((seed, base["predictions"], erase["predictions"]))
        runs[str(seed)] = {**{variant: folder.relative_to(out).as_posix() for variant, folder in folders.items()},
                           "init_sha256": init_b}
    stats = paired_comparison(pairs, VARIANTS, replicates=replicates, level=level)
    first = read_json(run_dir(out, task, BASELINE, seeds[0]) / CONFIG_FILE)
    return {"task": task, "created": now_utc(),
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
    atomic_write_text(out / SUMMARY_FILE, text)
    print(text)
    print(f"written: {out / COMPARISON_FILE}, {out / SUMMARY_FILE}")
    return comparison


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser(), errors=(CheckpointError, DatasetError, DivergedError)))
