"""Which speed settings pay off on this device: one task's training step under each setting.

    python benchmarks/step_settings.py --task cifar10 --device cpu --batch-size 64
    python benchmarks/step_settings.py --task catsdogs --device cpu --batch-size 16 --steps 2
    python benchmarks/step_settings.py --task cifar10 --device cuda --compile

The step is training.engine.train_one_epoch itself (the task's model, loss and
training.train.build_optimizer), fed pre-made normalised batches of the model's input size,
so data loading is left out and only the arithmetic differs:

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

from benchmarks.common import Timer, add_common_args, fmt, print_table, ratio_summary, setup, summary, write_result
from models.registry import create_model
from training.engine import make_loss, train_one_epoch
from models.tasks import TASKS, get_task
from training.optim import build_optimizer
from training.run_config import override_recipe
from training.precision import resolve_precision, use_channels_last

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


class Step:
    def __init__(self, name, task, recipe, device, batch_size, autocast_dtype, channels_last, compile_model):
        self.name, self.cfg, self.device = name, task.model_config(), device
        self.autocast_dtype, self.channels_last = autocast_dtype, channels_last
        torch.manual_seed(0)
        self.model = create_model(self.cfg).to(device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, recipe["optimizer"], device)
        self.loss_fn = make_loss(recipe["loss"], self.cfg)
        self.step_model = torch.compile(self.model) if compile_model else self.model
        g = torch.Generator().manual_seed(0)
        c, s = self.cfg.in_channels, self.cfg.input_size
        x = torch.randn(batch_size, c, s, s, generator=g).to(device)
        y = torch.randint(0, self.cfg.num_classes, (batch_size,), generator=g).to(device)
        self.batch = (x, y, torch.arange(batch_size))

    def run(self, steps: int) -> int:
        out = train_one_epoch(self.step_model, [self.batch] * steps, self.optimizer, None, self.loss_fn, self.cfg,
                              device=self.device, epoch=0, autocast_dtype=self.autocast_dtype,
                              channels_last=self.channels_last, progress=False)
        return out["images"]


def main(args) -> dict:
    device, env = setup(args)
    task = get_task(args.task)
    recipe = override_recipe(task.resolved_recipe(binary=task.model_config().binary), batch_size=args.batch_size)
    bs = recipe["batch_size"]
    bf16_ok = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    variants = {name: v for name, v in VARIANTS.items() if v[0] is None or bf16_ok}
    steps = [Step(name, task, recipe, device, bs, dtype, cl, False) for name, (dtype, cl) in variants.items()]
    if args.compile:
        steps += [Step(f"{name}+compile", task, recipe, device, bs, dtype, cl, True)
                  for name, (dtype, cl) in variants.items()]
    auto = resolve_precision("auto", device)
    picked = ("bf16" if auto is not None else "fp32") + ("+channels_last" if use_channels_last(device, auto) else "")
    print(f"training step settings, {args.task} ({task.architecture}), {device} "
          f"({env['gpu'] or env['cpu']}, {torch.get_num_threads()} threads), batch {bs}, "
          f"{args.steps} steps x {args.repeats} repeats; --precision auto here: {picked}")
    for s in steps:
        s.run(args.warmup)
    rates: dict[str, list[float]] = {s.name: [] for s in steps}
    for r in range(args.repeats):
        for s in steps[r % len(steps):] + steps[:r % len(steps)]:
            with Timer(device) as t:
                images = s.run(args.steps)
            rates[s.name].append(images / t.seconds)
            print(f"  repeat {r + 1}: {s.name:>28} {images / t.seconds:8.1f} images/s", flush=True)
    results = {name: summary(v) for name, v in rates.items()}
    ratios = {f"{name} / fp32": ratio_summary(v, rates["fp32"]) for name, v in rates.items() if name != "fp32"}
    print()
    print_table(["setting", "images/s", "vs fp32"],
                [[name, fmt(results[name]), f"{fmt(ratios[f'{name} / fp32'], 2)}x" if name != "fp32" else "1"]
                 for name in rates])
    result = {"task": args.task, "architecture": task.architecture, "batch_size": bs, "steps": args.steps,
              "repeats": args.repeats, "compile": args.compile, "auto_picks": picked,
              "images_per_s": results, "ratios": ratios}
    write_result(f"step_settings-{args.task}", device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
