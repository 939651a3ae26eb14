"""Training images/s: CNN Studio's real training step vs the usual loop vs the homework setup.

    python benchmarks/train_throughput.py --task cifar10 --device cpu --batch-size 64 --steps 4 --repeats 3
    python benchmarks/train_throughput.py --task cifar10 --device cpu --other-precision   # auto's evidence
    python benchmarks/train_throughput.py --task mnist --data-dir ../shared/data --device cuda

Three contenders, interleaved in one process (the order rotates every repeat), each timed
over `--steps` training steps (after `--warmup` untimed steps), data loading included:

- cnn_studio: training.data.Batches (the whole split as uint8 on the device) with
  models.augment.TrainAugment, the task's model, training.train.build_optimizer (fused on
  CUDA), the speed settings of training/train.py (`--precision auto`: bf16 autocast with
  channels_last on CUDA and on CPUs with AMX, fp32 elsewhere; `--compile` as train.py's flag)
  and training.engine.train_one_epoch itself; with `--other-precision` also the same step in
  the precision auto did not pick (cnn_studio_fp32 or cnn_studio_bf16);
- usual: the usual loop, as tutorials write it: a torch DataLoader over the split's PIL images
  with per-image torchvision transforms (RandomCrop with padding, flip, ToImage/ToDtype/
  Normalize: `per_image_transform` below) and `--workers`
  processes (pinned memory on CUDA), the *same model* (same architecture, same initial
  weights) and the same optimizer settings, in plain fp32;
- homework: the original homework's setup: torchvision's `vgg19_bn(num_classes=10)` (the
  ImageNet classifier, 4096-4096 on a 7x7 map, 139.6M parameters) fed 3-channel images
  through the same per-image DataLoader (MNIST: grey replicated to 3 channels), at
  `--homework-size` pixels (default 32: the images' own size; the homework also ran
  VGG19 on resized input, which costs (size/32)^2 times more), SGD with momentum, fp32.

Data: `--data-dir` with the real dataset (CIFAR-10 or MNIST as torchvision reads them), or
without it synthetic uint8 images of the task's shape (CIFAR-shaped noise), the same for
all three. Reports images/s (mean ± std over repeats) and the paired ratios.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python benchmarks/<name>.py`

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2.functional import to_pil_image

from benchmarks.common import add_common_args, compare, interleave, setup, write_result
from models.augment import TrainAugment
from models.registry import create_model
from models.tasks import get_task
from training.data import Batches, Split, find_source, load_split
from training.engine import make_loss, train_one_epoch
from training.optim import build_optimizer, build_scheduler
from training.precision import resolve_precision, use_channels_last
from training.run_config import override_recipe


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cifar10", choices=["cifar10", "mnist"])
    p.add_argument("--data-dir", help="real dataset folder (default: synthetic images of the task's shape)")
    p.add_argument("--images", type=int, default=4096, help="size of the (synthetic or subset) training split")
    p.add_argument("--batch-size", type=int, help="images per step (default: the task's recipe)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per contender per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per contender before the first repeat")
    p.add_argument("--workers", type=int, default=2, help="DataLoader processes of the usual loop and homework")
    p.add_argument("--homework-size", type=int, default=32, help="input side of the homework setup")
    p.add_argument("--compile", action="store_true", help="torch.compile CNN Studio's model, as train.py --compile")
    p.add_argument("--other-precision", action="store_true",
                   help="also time CNN Studio's step in the precision train.py --precision auto does not pick "
                        "on this device (cnn_studio_fp32 or cnn_studio_bf16): the measurement behind auto")
    p.add_argument("--tag", help="added to the result's file name (train_throughput-<task>-<tag>-<device>.json)")
    p.add_argument("--only", nargs="+",
                   choices=["cnn_studio", "usual", "homework", "cnn_studio_fp32", "cnn_studio_bf16"],
                   help="run only these contenders")
    add_common_args(p, repeats=3)
    return p


def per_image_transform(aug: TrainAugment) -> v2.Compose:
    """The same training transform as torchvision applies it, one image at a time."""
    steps = [v2.RandomCrop(aug.crop, padding=aug.padding or None)] + ([v2.RandomHorizontalFlip()] if aug.flip else [])
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(aug.mean), list(aug.std))]
    if aug.random_erasing:
        re = aug.random_erasing
        steps.append(v2.RandomErasing(p=re["p"], scale=tuple(re["scale"]), ratio=tuple(re["ratio"]), value="random"))
    return v2.Compose(steps)


def speed_settings(device: torch.device, precision: str = "auto") -> dict:
    """The settings training/train.py uses on this device."""
    autocast_dtype = resolve_precision(precision, device)
    return {"channels_last": use_channels_last(device, autocast_dtype), "autocast_dtype": autocast_dtype,
            "fused_optimizer": device.type in ("cuda", "cpu"), "cudnn_benchmark": device.type == "cuda"}


def synthetic_split(cfg, n: int, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, cfg.in_channels, cfg.stored_size, cfg.stored_size), dtype=torch.uint8,
                           generator=g)
    labels = torch.randint(0, cfg.num_classes, (n,), generator=g)
    return Split("train", images, labels, torch.arange(n))


class PilImages(torch.utils.data.Dataset):
    """(image, label) of a uint8 split, each row a PIL image as torchvision's datasets hand them out,
    through a per-image transform: what the usual loop's DataLoader reads."""

    def __init__(self, split: Split, transform):
        self.arrays, self.labels, self.transform = split.images.permute(0, 2, 3, 1).numpy(), split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(to_pil_image(self.arrays[i])), int(self.labels[i])   # HxWx1: mode L; HxWx3: RGB


def plain_optimizer(model, opt: dict):
    """The recipe's optimizer as a tutorial would create it (one group, default implementation)."""
    if opt["name"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=opt["lr"], momentum=opt.get("momentum", 0.0),
                               nesterov=opt.get("nesterov", False), weight_decay=opt.get("weight_decay", 0.0))
    return torch.optim.Adam(model.parameters(), lr=opt["lr"], weight_decay=opt.get("weight_decay", 0.0))


class Window:
    """`steps` batches drawn lazily from a running iterator, looking like a loader to the engine."""

    def __init__(self, iterator, steps: int):
        self.iterator, self.steps = iterator, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(self.iterator, self.steps)


def endless(loader):
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def homework(cfg, recipe, size: int, usual_loader, device) -> "PlainLoop":
    """The homework's setup: torchvision's ImageNet vgg19_bn on 3-channel images, SGD with momentum, fp32."""
    from torchvision.models import vgg19_bn
    torch.manual_seed(0)
    model = vgg19_bn(num_classes=cfg.num_classes).to(device)
    grey = cfg.in_channels == 1
    steps = ([v2.Grayscale(num_output_channels=3)] if grey else [])
    if size != cfg.input_size:
        steps.append(v2.Resize((size, size), antialias=True))
    augment = TrainAugment(crop=size, padding=recipe["augment"].get("padding", 0), flip=recipe["augment"].get("flip"),
                           mean=cfg.mean * 3 if grey else cfg.mean, std=cfg.std * 3 if grey else cfg.std)
    pipeline = v2.Compose(steps + list(per_image_transform(augment).transforms))
    return PlainLoop("homework", model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                     usual_loader(pipeline), device)


class CnnStudio:
    """CNN Studio's step: the task's model with train.py's optimizer, schedule, loss and speed `settings`,
    through training.engine.train_one_epoch itself, on batches read endlessly from `loader`
    (benchmarks/step_settings.py feeds it one pre-made batch)."""

    def __init__(self, name, cfg, recipe, device, loader, settings, compile_model=False, total_steps=None):
        self.name, self.device, self.cfg, self.settings = name, device, cfg, settings
        torch.manual_seed(0)
        self.model = create_model(cfg).to(device)
        if settings["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, recipe["optimizer"], device)
        self.scheduler = (build_scheduler(self.optimizer, recipe["schedule"], epochs=1, steps_per_epoch=total_steps)
                          if total_steps else None)
        self.loss_fn = make_loss(recipe["loss"], cfg)
        self.step_model = torch.compile(self.model) if compile_model else self.model
        self.batches = endless(loader)

    def run(self, steps: int) -> int:
        out = train_one_epoch(self.step_model, Window(self.batches, steps), self.optimizer, self.scheduler,
                              self.loss_fn, self.cfg, device=self.device, epoch=0,
                              autocast_dtype=self.settings["autocast_dtype"],
                              channels_last=self.settings["channels_last"], progress=False)
        return out["images"]


class PlainLoop:
    """The usual training loop: DataLoader batches, fp32, no tricks."""

    def __init__(self, name, model, optimizer, loader, device):
        self.name, self.model, self.optimizer, self.loader, self.device = name, model, optimizer, loader, device
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.batches = endless(loader)

    def run(self, steps: int) -> int:
        self.model.train()
        seen = 0
        for _ in range(steps):
            x, y = (t.to(self.device, non_blocking=True) for t in next(self.batches))
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            seen += y.shape[0]
        return seen


def contenders(args, cfg, recipe, split, device) -> list:
    """The contenders `args` asks for (--only, --other-precision), in their timing order."""
    bs = recipe["batch_size"]
    total_steps = args.steps * args.repeats + args.warmup + 1000   # the schedule only needs to outlast the run
    usual_loader = lambda transform: torch.utils.data.DataLoader(  # noqa: E731
        PilImages(split, transform), batch_size=bs, shuffle=True, drop_last=True, num_workers=args.workers,
        pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    studio = lambda name, precision: CnnStudio(  # noqa: E731
        name, cfg, recipe, device, Batches(split, batch_size=bs, device=device, shuffle=True, drop_last=True,
                                           transform=TrainAugment.from_recipe(recipe["augment"], cfg)),
        speed_settings(device, precision), args.compile, total_steps)
    found = []
    wanted = set(args.only or ["cnn_studio", "usual", "homework"])
    if "cnn_studio" in wanted:
        found.append(studio("cnn_studio", "auto"))
    other = "fp32" if speed_settings(device)["autocast_dtype"] is not None else "bf16"
    if (args.other_precision and (not args.only or f"cnn_studio_{other}" in wanted)
            and (other == "fp32" or device.type == "cpu" or torch.cuda.is_bf16_supported())):
        found.append(studio(f"cnn_studio_{other}", other))
    if "usual" in wanted:
        torch.manual_seed(0)                          # the same initial weights as cnn_studio's model
        model = create_model(cfg).to(device)
        found.append(PlainLoop("usual", model, plain_optimizer(model, recipe["optimizer"]),
                               usual_loader(per_image_transform(TrainAugment.from_recipe(recipe["augment"], cfg))),
                               device))
    if "homework" in wanted:
        found.append(homework(cfg, recipe, args.homework_size, usual_loader, device))
    return found


def task_recipe(args):
    """(task, its model config, its training recipe at --batch-size) for --task: what every step timed uses."""
    task = get_task(args.task)
    cfg = task.model_config()
    return task, cfg, override_recipe(task.resolved_recipe(binary=cfg.binary), batch_size=args.batch_size)


def main(args) -> dict:
    device, env = setup(args)
    task, cfg, recipe = task_recipe(args)
    bs = recipe["batch_size"]
    if args.data_dir:
        split = load_split(task, find_source(task, args.data_dir), args.data_dir, train=True, limit=args.images,
                           download=False)
        data = f"{task.dataset.name} from {args.data_dir} ({len(split)} training images)"
    else:
        split = synthetic_split(cfg, args.images)
        data = f"synthetic uint8 {cfg.stored_size}x{cfg.stored_size}x{cfg.in_channels} ({args.images} images)"
    found = contenders(args, cfg, recipe, split, device)
    print(f"training throughput, {args.task}, {device} ({env['gpu'] or env['cpu']}, {env['cpu_cores']} cores, "
          f"{torch.get_num_threads()} threads), batch {bs}, {args.steps} steps x {args.repeats} repeats; {data}")
    for c in found:          # warm-up: workers started, kernels chosen, allocator primed
        c.run(args.warmup)
    rates, _ = interleave({c.name: (lambda c=c: c.run(args.steps)) for c in found}, args.repeats, device)

    variants = [name for name in ("cnn_studio_fp32", "cnn_studio_bf16") if name in rates]
    results, ratios = compare(rates, [("cnn_studio", v) for v in variants] + [
        (ours, other) for ours in ("cnn_studio", *variants) for other in ("usual", "homework")])
    printable = lambda settings: {**settings, "autocast_dtype": str(settings["autocast_dtype"])}  # noqa: E731
    result = {"task": args.task, "data": data, "batch_size": bs, "steps": args.steps, "repeats": args.repeats,
              "workers": args.workers, "homework_size": args.homework_size, "compile": args.compile,
              "cnn_studio_settings": printable(speed_settings(device)),
              "other_settings": {c.name: printable(c.settings) for c in found if c.name.startswith("cnn_studio_")},
              "parameters": {c.name: sum(p.numel() for p in c.model.parameters()) for c in found},
              "images_per_s": results, "ratios": ratios}
    write_result(f"train_throughput-{args.task}" + (f"-{args.tag}" if args.tag else ""), device, result, env)
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
