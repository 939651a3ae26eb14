"""Evaluate a released model on its validation split.

    python -m training.evaluate RUN_DIR [--data-dir data] [--limit-val N] [--out metrics.json]
                                [--tta] [--predictions [FILE]]

Loads the release files only (config.json + model.safetensors, through models.artifact, the
same loader the app and Hub users have) and evaluates on the same split and, by default,
the same seeded subset the run used, so it reproduces the run's metrics.json.

--tta and --predictions: docs/see-why.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.artifact import ArtifactError, listed_files, load_model, record_digest
from models.atomic import atomic_write_json
from models.augment import EvalTransform
from analysis.tta import TTAModel
from training.cli import CliError, check_writable_folder, nonnegative_int, positive_int, run_cli
from models.tasks import get_task
from training.data import Batches, DatasetError, find_source, load_split
from training.engine import evaluate, make_loss
from training.precision import resolve_device
from training.release import metrics_record, predictions_record


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate",
                                description="Evaluate a CNN Studio model on its validation split.")
    p.add_argument("run_dir", help="run directory or Hub repo id (user/name[@revision])")
    p.add_argument("--data-dir", default="data", help="as the run's training used (for --task folder: the folder)")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="processes decoding image files")
    p.add_argument("--limit-val", type=positive_int, help="seeded subset of N images (default: as in the run)")
    p.add_argument("--seed", type=nonnegative_int, help="seed of the subset (default: the run's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--tta", action="store_true",
                   help="also report test-time augmentation accuracy (flip; flip + small shifts)")
    p.add_argument("--predictions", nargs="?", const="", metavar="FILE",
                   help="write per-image predictions (predictions.json format) to FILE "
                        "(no FILE: RUN_DIR/predictions.json)")
    p.add_argument("--out", help="write the metrics as JSON to this file")
    return p


def main(args) -> dict:
    device = resolve_device(args.device)
    predictions = prediction_target(args)
    # Refuse unwritable outputs before the (long) evaluation, leaving nothing behind.
    for flag, target in (("--out", Path(args.out) if args.out else None), ("--predictions", predictions)):
        if target is not None:
            check_writable_folder(target.parent, flag)
    loaded = load_model(args.run_dir, device=device)
    info, cfg = loaded.info, loaded.config
    task = get_task(info["task"]).with_architecture(cfg.architecture)
    seed = args.seed if args.seed is not None else info.get("seed", 0)
    limit_val = args.limit_val if args.limit_val is not None else info.get("limit_val")
    source = find_source(task, args.data_dir)
    if source.labels != cfg.labels:
        raise CliError(f"--data-dir {args.data_dir}: holds the classes {list(source.labels)[:8]}, the model has "
                       f"{list(cfg.labels)[:8]}")
    val = load_split(task, source, args.data_dir, train=False, limit=limit_val, seed=seed)
    batches = lambda transform: Batches(val, batch_size=args.batch_size, device=device, shuffle=False,  # noqa: E731
                                        transform=transform, workers=args.workers)
    loader = batches(EvalTransform.from_config(cfg))
    loss_fn = make_loss(info["recipe"]["loss"], cfg)
    ev = evaluate(loaded.model, loader, loss_fn, cfg, device=device)
    metrics = metrics_record(ev, info)
    if args.tta:
        if cfg.in_channels == 1:
            print("note: flip TTA on digits changes their meaning; reported anyway", file=sys.stderr)
        full = batches(EvalTransform(crop=cfg.stored_size, mean=cfg.mean, std=cfg.std))   # uncropped: TTA crops
        flip_only = TTAModel(loaded.model, cfg, flip=True, shift=0)    # the centre crop and its mirror
        metrics["tta_flip_accuracy"] = evaluate(flip_only, full, loss_fn, cfg, device=device)["accuracy"]
        # Flip (only for tasks trained with flips) + shifted crops of the stored image.
        tta_model = TTAModel(loaded.model, cfg, flip=bool(info["recipe"]["augment"].get("flip", True)))
        metrics["tta_accuracy"] = evaluate(tta_model, full, loss_fn, cfg, device=device)["accuracy"]
        metrics["tta"] = tta_model.describe()
    print_report(metrics)
    if args.out:
        atomic_write_json(Path(args.out), metrics)
        keep_digests(args.run_dir, Path(args.out))
    if predictions is not None:
        atomic_write_json(predictions, predictions_record(ev, val, info))
        keep_digests(args.run_dir, predictions)
        print(f"predictions: {predictions}")
    return metrics


def prediction_target(args) -> Path | None:
    if args.predictions is None:
        return None
    if args.predictions:
        return Path(args.predictions)
    if not Path(args.run_dir).is_dir():
        raise CliError("--predictions without FILE needs a local run directory; give a file name")
    return Path(args.run_dir) / "predictions.json"


def keep_digests(run_dir: str, written: Path) -> None:
    """A release file of a local run rewritten here gets its new digest in the run's SHA256SUMS."""
    folder = Path(run_dir).resolve()
    if not folder.is_dir() or not written.resolve().is_relative_to(folder):
        return                       # a Hub repo, or written elsewhere: the release is untouched
    name = written.resolve().relative_to(folder).as_posix()
    if name in listed_files(folder):
        record_digest(folder, name)


def print_report(metrics: dict) -> None:
    print(f"accuracy {metrics['accuracy']:.4f} on {metrics['num_images']} images ({metrics['split']} split)")
    if "tta" in metrics:   # --tta: both accuracies
        print(f"accuracy with flip TTA {metrics['tta_flip_accuracy']:.4f}")
        t = metrics["tta"]
        what = ("flip + " if t["flip"] else "") + f"{t['shift_px']} px shifts, {t['views']} views"
        print(f"accuracy with TTA ({what}) {metrics['tta_accuracy']:.4f}")
    print("per-class accuracy:")
    for label, acc in metrics["per_class_accuracy"].items():
        print(f"  {label:>12}  {'n/a' if acc is None else f'{acc:.4f}'}")
    labels = metrics["labels"]
    width = max(5, max(len(str(l)) for l in labels))
    print("confusion matrix (rows: true, columns: predicted):")
    print(" " * (width + 2) + " ".join(f"{l[:width]:>{width}}" for l in labels))
    for label, row in zip(labels, metrics["confusion_matrix"]):
        print(f"{label[:width]:>{width}}  " + " ".join(f"{v:>{width}}" for v in row))


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser(), errors=(ArtifactError, DatasetError)))
