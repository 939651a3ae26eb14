"""Your own images at scale: peak memory and images/s of a training pass over a folder of full-size JPEGs.

    python benchmarks/folder_memory.py --make /tmp/folder20k --images 20000      # once: the folder
    python benchmarks/folder_memory.py --data-dir /tmp/folder20k --workers 2 --repeats 2

Two ways to read the same folder (`DIR/<class>/*.jpg`) into model-ready training batches (ResNet50's
recipe: images kept at 256 px, random 224 crop, flip, normalise), each in a fresh process so its
peak memory is its own, interleaved over repeats:

- cnn_studio: `python -m training.train --task folder`'s data path: training.data.find_source +
  load_split (a list of files) + Batches (DataLoader worker processes decode each file with the
  app's decoder, JPEGs at the DCT scale nearest 256 px; whole uint8 batches augmented at once);
- torchvision: `torchvision.datasets.ImageFolder` with per-image transforms (Resize(256),
  RandomCrop(224), RandomHorizontalFlip, ToImage, ToDtype, Normalize) in a torch DataLoader with
  the same workers and batch size.

Reported: images/s over one pass (decoding included), the peak resident memory of the main process
and of the largest worker (ru_maxrss), and for scale what holding the whole set decoded at 256 px
in memory would take. Nothing here trains a model: the model's step costs the same for both.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

import torch

from benchmarks.common import environment, ratio_summary, summary, write_result
from benchmarks.report import fmt

CONTENDERS = ("cnn_studio", "torchvision")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--make", metavar="DIR", help="write the folder of JPEGs, then stop")
    p.add_argument("--images", type=int, default=20_000, help="with --make: how many (in --classes folders)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--size", type=int, nargs=2, default=(1600, 1200), metavar=("W", "H"), help="with --make")
    p.add_argument("--data-dir", help="the folder to read")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)   # a child process: one pass
    return p


def make_folder(root: Path, images: int, classes: int, size: tuple[int, int]) -> None:
    """Smooth photos-like JPEGs (gradients, shapes, noise) at `size`, quality 90."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(0)
    w, h = size
    ramp = np.linspace(0, 1, w)[None, :, None] * np.linspace(0.4, 1, h)[:, None, None]
    for i in range(images):
        k = i % classes
        folder = root / f"class_{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = rng.integers(0, 256, 3)
        arr = (ramp * colour + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
        x, y = rng.integers(0, w // 2), rng.integers(0, h // 2)
        ImageDraw.Draw(img).ellipse((x, y, x + w // 3, y + h // 3), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        img.save(folder / f"{i:06d}.jpg", quality=90)
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} of {images}", flush=True)


def one_pass(name: str, data_dir: str, batch_size: int, workers: int) -> dict:
    """Every training batch of one epoch, as `name` makes them; the numbers of this process."""
    from models.augment import TrainAugment
    from models.tasks import get_task
    task = get_task("folder")
    if name == "cnn_studio":
        from training.data import Batches, find_source, load_split
        source = find_source(task, data_dir)
        cfg = task.model_config(source.labels)
        split = load_split(task, source, data_dir, train=True)
        loader = Batches(split, batch_size=batch_size, device=torch.device("cpu"), shuffle=True, drop_last=True,
                         workers=workers, transform=TrainAugment.from_recipe(task.recipe["augment"], cfg))
    else:
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2
        cfg = task.model_config(("a", "b"))
        transform = v2.Compose([v2.Resize(256, antialias=True), v2.RandomCrop(224), v2.RandomHorizontalFlip(),
                                v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(cfg.mean, cfg.std)])
        loader = torch.utils.data.DataLoader(ImageFolder(data_dir, transform=transform), batch_size=batch_size,
                                             shuffle=True, drop_last=True, num_workers=workers)
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += batch[0].shape[0]
    seconds = time.perf_counter() - start
    kib = 1024   # ru_maxrss is in KiB on Linux
    return {"images": images, "seconds": seconds, "images_per_s": images / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
            "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}


def main(args) -> dict:
    if args.make:
        make_folder(Path(args.make), args.images, args.classes, tuple(args.size))
        return {}
    if args.one:
        print(json.dumps(one_pass(args.one, args.data_dir, args.batch_size, args.workers), allow_nan=False))
        return {}
    env = environment(torch.device("cpu"))
    files = sum(1 for p in Path(args.data_dir).rglob("*.jpg"))
    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for r in range(args.repeats):
        for name in CONTENDERS[r % 2:] + CONTENDERS[:r % 2]:
            out = subprocess.run([sys.executable, __file__, "--one", name, "--data-dir", args.data_dir,
                                  "--batch-size", str(args.batch_size), "--workers", str(args.workers)],
                                 capture_output=True, text=True, check=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            print(f"  repeat {r + 1}: {name:>12} {runs[name][-1]}", flush=True)
    keys = ("images_per_s", "peak_rss_mib", "peak_worker_rss_mib")
    results = {name: {k: summary([run[k] for run in v]) for k in keys} for name, v in runs.items()}
    ratios = {k: ratio_summary([r[k] for r in runs["cnn_studio"]], [r[k] for r in runs["torchvision"]]) for k in keys}
    in_memory_mib = files * 3 * 256 * 256 / 2**20
    print(f"\nfolder of {files:,} JPEGs, batch {args.batch_size}, {args.workers} workers; held decoded at 256 px "
          f"it would take {in_memory_mib:,.0f} MiB")
    for name, r in results.items():
        print(f"  {name}: {fmt(r['images_per_s'], 1)} images/s, peak {fmt(r['peak_rss_mib'])} MiB (main process), "
              f"{fmt(r['peak_worker_rss_mib'])} MiB (a worker)")
    print("cnn_studio / torchvision: " + ", ".join(f"{k} {fmt(v, 2)}x" for k, v in ratios.items()))
    result = {"data_dir_files": files, "batch_size": args.batch_size, "workers": args.workers,
              "repeats": args.repeats, "whole_set_decoded_mib": in_memory_mib, "results": results,
              "ratios_cnn_studio_over_torchvision": ratios, "runs": runs}
    write_result("folder_memory", torch.device("cpu"), result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
