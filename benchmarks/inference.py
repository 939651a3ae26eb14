"""Inference: single-image latency from a PIL image to probabilities, and batch throughput,
each against the bare model forward.

    python benchmarks/inference.py --task cifar10 --device cpu --iterations 100
    python benchmarks/inference.py --task catsdogs --image-size 500 375 --iterations 20
    python benchmarks/inference.py --run runs/mnist/20261129-170000      # a trained run's weights

- end_to_end: `models.predict.predict_probs(model, cfg, pil_image)`, what the app calls:
  decoding checks, mode conversion, resize/centre crop, normalisation, forward,
  softmax/sigmoid, a {label: probability} dict;
- bare_forward: `model(x)` on an already preprocessed (1, C, S, S) tensor on the device.

Latency p50/p95 over `--iterations` calls, interleaved; the overhead is
p50(end_to_end) / p50(bare_forward) - 1. Batch throughput: images/s of
`preprocess_uint8` + forward + probabilities on a uint8 batch vs the forward alone.
The input is a random image of `--image-size` (default: the task's native size, 32x32 RGB
for CIFAR-10, 28x28 grey for MNIST, 500x375 RGB for cats vs dogs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

import numpy as np
import torch
from PIL import Image

from benchmarks.common import Timer, add_common_args, print_table, setup, summary, sync, write_result
from models.augment import EvalTransform
from models.predict import logits_to_probs, predict_probs, prepare, to_stored
from models.registry import create_model
from models.tasks import TASKS

NATIVE = {"cifar10": ((32, 32), "RGB"), "mnist": ((28, 28), "L"), "catsdogs": ((500, 375), "RGB")}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cifar10", choices=sorted(NATIVE))
    p.add_argument("--run", help="a run directory or Hub repo to load (default: fresh weights of the task's model)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), help="input image size")
    p.add_argument("--iterations", type=int, default=100, help="single-image calls per contender")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=5, help="timed batches per contender per repeat")
    add_common_args(p, repeats=3)
    return p


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def batch_throughput(model, cfg, size, device, args) -> dict:
    """Images/s of whole batches: the bare forward vs the app's preparation + forward + probabilities."""
    rng = np.random.default_rng(1)
    bs = args.batch_size
    c = cfg.in_channels
    batch_u8 = torch.from_numpy(rng.integers(0, 256, (bs, c, size[1], size[0]), dtype=np.uint8)).to(device)
    evaluation = EvalTransform.from_config(cfg)

    def preprocess(batch):       # what prepare does to each decoded image, for a whole batch
        return evaluation(torch.stack([to_stored(Image.fromarray(a.permute(1, 2, 0).squeeze(-1).cpu().numpy()),
                                                 c, cfg.stored_size) for a in batch]).to(device))
    xb = preprocess(batch_u8)

    @torch.inference_mode()
    def batch_bare():
        for _ in range(args.batches):
            model(xb)

    @torch.inference_mode()
    def batch_full():
        for _ in range(args.batches):
            logits_to_probs(model(preprocess(batch_u8)), cfg).cpu()

    batch_full(), batch_bare()
    rates: dict[str, list[float]] = {"end_to_end": [], "bare_forward": []}
    for r in range(args.repeats):
        for name, fn in ((("end_to_end", batch_full), ("bare_forward", batch_bare)) if r % 2 == 0 else
                         (("bare_forward", batch_bare), ("end_to_end", batch_full))):
            with Timer(device) as t:
                fn()
            rates[name].append(bs * args.batches / t.seconds)
    return {name: summary(v) for name, v in rates.items()}


def main(args) -> dict:
    device, env = setup(args)
    if args.run:
        from models.artifact import load_model
        loaded = load_model(args.run, device=device)
        model, cfg = loaded.model, loaded.config
        task = getattr(loaded, "info", {}).get("task", args.task)
    else:
        cfg, task = TASKS[args.task].model_config(), args.task
        torch.manual_seed(0)
        model = create_model(cfg).to(device)
    model.eval()
    size, mode = NATIVE[task]
    if args.image_size:
        size = tuple(args.image_size)
    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    x = prepare(image, cfg, task_step=False)[0].to(device)

    @torch.inference_mode()
    def bare():
        model(x)
        sync(device)

    def end_to_end():
        predict_probs(model, cfg, image, task_step=False)   # returns floats: already synchronised
    for _ in range(5):                     # warm-up
        bare(), end_to_end()
    lat: dict[str, list[float]] = {"end_to_end": [], "bare_forward": []}
    for i in range(args.iterations):
        for name, fn in ((("bare_forward", bare), ("end_to_end", end_to_end)) if i % 2 else
                         (("end_to_end", end_to_end), ("bare_forward", bare))):
            t = time.perf_counter()
            fn()
            lat[name].append((time.perf_counter() - t) * 1e3)
    latency = {name: {"p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95), "mean_ms": statistics.fmean(v),
                      "n": len(v)} for name, v in lat.items()}
    overhead = latency["end_to_end"]["p50_ms"] / latency["bare_forward"]["p50_ms"] - 1

    throughput = batch_throughput(model, cfg, size, device, args)
    bs = args.batch_size

    print(f"inference, {task} ({cfg.architecture}), {device} ({env['gpu'] or env['cpu']}, "
          f"{torch.get_num_threads()} threads), input {size[0]}x{size[1]} {mode}")
    print_table(["path", "p50 ms", "p95 ms", f"batch {bs} images/s"],
                [[name, f"{latency[name]['p50_ms']:.2f}", f"{latency[name]['p95_ms']:.2f}",
                  f"{throughput[name]['mean']:,.0f} ± {throughput[name]['std']:,.0f}"] for name in lat])
    print(f"  end-to-end overhead over the bare forward (p50): {overhead * 100:.1f}%")
    result = {"task": task, "architecture": cfg.architecture, "run": args.run, "image_size": list(size),
              "image_mode": mode, "iterations": args.iterations, "batch_size": bs, "batches": args.batches,
              "repeats": args.repeats, "latency": latency, "overhead_p50": overhead,
              "batch_images_per_s": throughput,
              "batch_overhead": throughput["bare_forward"]["mean"] / throughput["end_to_end"]["mean"] - 1}
    write_result(f"inference-{task}", device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
