"""Augmentation alone: CNN Studio's batched per-sample pipeline vs torchvision per image.

    python benchmarks/augment_throughput.py [--task cifar10] [--device cpu] [--batch-size 256]
                                            [--images 2048] [--repeats 5] [--no-random-erasing]

The same training transform three ways, on CIFAR-shaped random uint8 images:

- cnn_studio: models.augment.TrainAugment on whole uint8 batches on the device (per-sample
  crop offsets, flips and Random Erasing rectangles drawn as tensor ops);
- torchvision_pil: the usual per-image pipeline (v2 RandomCrop with padding, RandomHorizontalFlip,
  ToImage, ToDtype, Normalize, RandomErasing: train_throughput.py's `per_image_transform`) applied
  to each PIL image in turn, then stacked into a batch, in one process;
- torchvision_tensor: the same v2 transforms per image on uint8 tensors instead of PIL.

PIL images are made before timing, so the per-image paths are not charged for decoding.
A DataLoader with W workers would run the per-image paths up to W times faster on W free
cores; the result records the core count. Interleaved repeats; mean ± std of images/s.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

import torch

from benchmarks.common import add_common_args, compare, interleave, setup, write_result
from benchmarks.train_throughput import PilImages, per_image_transform, synthetic_split
from models.augment import TrainAugment
from models.tasks import RANDOM_ERASING_DEFAULTS, get_task


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cifar10", choices=["cifar10", "mnist"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--images", type=int, default=2048, help="images per timed repeat of the per-image paths")
    p.add_argument("--passes", type=int, default=20,
                   help="passes over the images per timed repeat of the batched path (it is that much faster)")
    add_common_args(p, repeats=5)
    p.add_argument("--no-random-erasing", action="store_true", help="crop + flip + normalise only")
    return p


def main(args) -> dict:
    device, env = setup(args)
    task = get_task(args.task)
    cfg = task.model_config()
    augment = dict(task.recipe["augment"])
    if not args.no_random_erasing:
        augment["random_erasing"] = dict(RANDOM_ERASING_DEFAULTS)
    aug = TrainAugment.from_recipe(augment, cfg)
    per_image = per_image_transform(aug)

    n, bs = args.images, args.batch_size
    split = synthetic_split(cfg, n)
    on_device = split.images.to(device)
    pil_images = [img for img, _ in PilImages(split, transform=lambda img: img)]
    gen = torch.Generator(device=device).manual_seed(1)

    def fast():
        for _ in range(args.passes):
            for start in range(0, n, bs):
                aug(on_device[start:start + bs], generator=gen)
        return n * args.passes

    def per_image_path(images):
        def run():
            for start in range(0, n, bs):
                torch.stack([per_image(img) for img in images[start:start + bs]]).to(device)
            return n
        return run

    paths = {"cnn_studio": fast, "torchvision_pil": per_image_path(pil_images),
             "torchvision_tensor": per_image_path(list(split.images))}
    for fn in paths.values():      # warm-up (allocator, kernels, lazy imports)
        fn()
    rates, cpu_rates = interleave(paths, args.repeats, device)

    pairs = [("cnn_studio", "torchvision_pil"), ("cnn_studio", "torchvision_tensor")]
    results, ratios = compare(rates, pairs)
    cpu_results, cpu_ratios = compare(cpu_rates, pairs)
    print(f"augmentation, {args.task}, {device} ({env['gpu'] or env['cpu']}), batch {bs}, "
          f"{'with' if aug.random_erasing else 'without'} Random Erasing, {args.repeats} repeats")
    result = {"task": args.task, "batch_size": bs, "images": n, "passes": args.passes, "repeats": args.repeats,
              "random_erasing": bool(aug.random_erasing), "transform": repr(aug),
              "per_image_transform": repr(per_image), "images_per_s": results, "ratios": ratios,
              "images_per_cpu_second": cpu_results, "cpu_time_ratios": cpu_ratios,
              "note": "images per CPU-second: process CPU time (all threads of this process), "
                      "insensitive to other processes sharing the machine"}
    write_result(f"augment_throughput-{args.task}-{'re' if aug.random_erasing else 'plain'}", device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
