"""Accuracy reached and wall time for a fixed budget of training images, on the real dataset.

    python benchmarks/time_to_accuracy.py --task mnist --data-dir ../shared/data --images 512 --epochs 1 \
        --batch-size 32 --val-images 256 --seeds 0
    python benchmarks/time_to_accuracy.py --task mnist --data-dir .device/data --epochs 2     # full MNIST, GPU

Both contenders are `training.train.run` itself (in this process), with the same
task recipe, model, initial weights (seed), subset of images and data order; they differ
only in the data path:

- cnn_studio: `--loader device` (the default): the split held as uint8 on the device,
  augmented in whole batches there;
- usual: `--loader dataloader`: a torch DataLoader over torchvision datasets with per-image
  PIL transforms and `--workers` processes (training/usual.py).

Both train in `--precision auto`. With `--other-precision`, a third contender trains the device
path in the precision auto did not pick on this device (cnn_studio_fp32 or cnn_studio_bf16):
what auto's choice costs or gains in accuracy and time.

Reported per contender (mean ± std over seeds): final validation accuracy, training
seconds (history.json), and wall seconds of the whole run (loading data, evaluating each
epoch and writing the run directory included). Seeds and contenders are interleaved.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

from benchmarks.common import add_common_args, fmt, print_table, ratio_summary, setup, summary, write_result


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="mnist", choices=["mnist", "cifar10"])
    p.add_argument("--data-dir", required=True, help="the real dataset (MNIST: ../shared/data)")
    p.add_argument("--images", type=int, help="training images (default: the whole training split)")
    p.add_argument("--val-images", type=int, help="validation images (default: the whole test split)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, help="default: the task's recipe")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the task's recipe)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes of the usual loop")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--other-precision", action="store_true",
                   help="also train the device path in the precision --precision auto does not pick here")
    add_common_args(p, repeats=None)   # repeats are the seeds
    return p


def one_run(args, device, loader: str, precision: str, seed: int, out: Path) -> dict:
    from training.run_config import options, resolve
    from training.train import run
    start = time.perf_counter()
    run(resolve(options(task=args.task, data_dir=args.data_dir, out=out, epochs=args.epochs, seed=seed,
                        device=device.type, loader=loader, workers=args.workers, precision=precision,
                        no_progress=True, limit_train=args.images or None, limit_val=args.val_images or None,
                        batch_size=args.batch_size or None, lr=args.lr or None)))
    wall = time.perf_counter() - start
    history = json.loads((out / "history.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    return {"accuracy": metrics["accuracy"], "train_seconds": sum(r["seconds"] for r in history),
            "wall_seconds": wall, "train_images": config["dataset"]["train_images"],
            "precision": config["precision"],
            "val_images": metrics["num_images"], "batch_size": config["recipe"]["batch_size"]}


def main(args) -> dict:
    device, env = setup(args)
    from training.precision import resolve_precision
    contenders = {"cnn_studio": ("device", "auto"), "usual": ("dataloader", "auto")}
    if args.other_precision:
        other = "fp32" if resolve_precision("auto", device) is not None else "bf16"
        contenders[f"cnn_studio_{other}"] = ("device", other)
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="tta-") as tmp:
        for i, seed in enumerate(args.seeds):
            names = list(contenders) if i % 2 == 0 else list(reversed(contenders))
            for name in names:
                r = one_run(args, device, *contenders[name], seed, Path(tmp) / f"{name}-{seed}")
                runs[name].append({"seed": seed, **r})
                print(f"  seed {seed}: {name:>15} ({r['precision']})  accuracy {r['accuracy']:.4f}  train {r['train_seconds']:.1f} s  "
                      f"wall {r['wall_seconds']:.1f} s", flush=True)
    results = {name: {**{key: summary([r[key] for r in rs]) for key in ("accuracy", "train_seconds", "wall_seconds")},
                      "precision": rs[0]["precision"]}
               for name, rs in runs.items()}
    speedup = {key: ratio_summary([r[key] for r in runs["usual"]], [r[key] for r in runs["cnn_studio"]])
               for key in ("train_seconds", "wall_seconds")}
    precision_speedup = {
        f"{name} / cnn_studio": {key: ratio_summary([r[key] for r in runs[name]], [r[key] for r in runs["cnn_studio"]])
                                 for key in ("train_seconds", "wall_seconds")}
        for name in runs if name.startswith("cnn_studio_")}
    first = runs["cnn_studio"][0]
    print(f"\ntime to accuracy, {args.task}, {device} ({env['gpu'] or env['cpu']}), {first['train_images']} training "
          f"images x {args.epochs} epoch(s), batch {first['batch_size']}, {first['val_images']} validation images, "
          f"seeds {args.seeds}")
    print_table(["contender", "precision", "accuracy", "train s", "wall s"],
                [[name, r["precision"], fmt(r["accuracy"], 4), fmt(r["train_seconds"]), fmt(r["wall_seconds"])]
                 for name, r in results.items()])
    print(f"  usual / cnn_studio time: train {fmt(speedup['train_seconds'], 2)}x, "
          f"wall {fmt(speedup['wall_seconds'], 2)}x")
    for key, r in precision_speedup.items():
        print(f"  {key} time: train {fmt(r['train_seconds'], 2)}x, wall {fmt(r['wall_seconds'], 2)}x")
    result = {"task": args.task, "data_dir": args.data_dir, "epochs": args.epochs, "seeds": args.seeds, "lr": args.lr,
              "train_images": first["train_images"], "val_images": first["val_images"],
              "batch_size": first["batch_size"], "workers": args.workers, "runs": runs, "results": results,
              "usual_over_cnn_studio": speedup, "other_precision_over_cnn_studio": precision_speedup}
    write_result(f"time_to_accuracy-{args.task}", device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
