"""Which speed settings pay off on this device: one task's training step under each setting.

    python benchmarks/step_settings.py --task cifar10 --device cpu --batch-size 64
    python benchmarks/step_settings.py --task catsdogs --device cpu --batch-size 16 --steps 2
    python benchmarks/step_settings.py --task cifar10 --device cuda --compile

The step is train_throughput.py's CNN Studio contender (training.engine.train_one_epoch with
the task's model, loss and optimizer), fed one pre-made normalised batch of the model's input
size, so data loading is left out and only the arithmetic differs:

- fp32: plain float32, NCHW;
- fp32+channels_last;
- bf16: bf16 autocast (CUDA GPUs with bf16, or any CPU: on CPUs without AMX oneDNN emulates it);
- bf16+channels_last: what `--precision auto` picks on CUDA and on CPUs with AMX;
- with `--compile`, each of them again under torch.compile (compile time excluded: it runs
  in the warm-up).

Variants are interleaved (the order rotates every repeat); reported as images/s and as the
ratio to fp32 in the same repeat. training/train.py's choices (benchmarks/README.md) come from
this table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

import torch

from benchmarks.common import add_common_args, compare, interleave, setup, write_result
from benchmarks.train_throughput import CnnStudio, speed_settings, task_recipe
from models.tasks import TASKS

VARIANTS = {"fp32": (None, False), "fp32+channels_last": (None, True),
            "bf16": (torch.bfloat16, False), "bf16+channels_last": (torch.bfloat16, True)}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cifar10", choices=[name for name, task in TASKS.items() if task.labels])
    p.add_argument("--batch-size", type=int, help="images per step (default: the task's recipe)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first (compiles, too)")
    p.add_argument("--compile", action="store_true", help="also time every variant under torch.compile")
    add_common_args(p, repeats=3)
    return p


def main(args) -> dict:
    device, env = setup(args)
    task, cfg, recipe = task_recipe(args)
    bs = recipe["batch_size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(bs, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g).to(device)
    y = torch.randint(0, cfg.num_classes, (bs,), generator=g).to(device)
    batch = [(x, y, torch.arange(bs))]
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    variants = {name: v for name, v in VARIANTS.items() if v[0] is None or bf16_ok}
    steps = [CnnStudio(name + ("+compile" if compiled else ""), cfg, recipe, device, batch,
                       {"autocast_dtype": dtype, "channels_last": channels_last}, compiled)
             for compiled in ((False, True) if args.compile else (False,))
             for name, (dtype, channels_last) in variants.items()]
    auto = speed_settings(device)
    picked = ("bf16" if auto["autocast_dtype"] is not None else "fp32") + ("+channels_last" if auto["channels_last"] else "")
    print(f"training step settings, {args.task} ({task.architecture}), {device} "
          f"({env['gpu'] or env['cpu']}, {torch.get_num_threads()} threads), batch {bs}, "
          f"{args.steps} steps x {args.repeats} repeats; --precision auto here: {picked}")
    for s in steps:
        s.run(args.warmup)
    rates, _ = interleave({s.name: (lambda s=s: s.run(args.steps)) for s in steps}, args.repeats, device)
    results, ratios = compare(rates, [(name, "fp32") for name in rates if name != "fp32"])
    result = {"task": args.task, "architecture": task.architecture, "batch_size": bs, "steps": args.steps,
              "repeats": args.repeats, "compile": args.compile, "auto_picks": picked,
              "images_per_s": results, "ratios": ratios}
    write_result(f"step_settings-{args.task}", device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
