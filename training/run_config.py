"""A run, described once: the training flags resolve into a frozen `RunConfig` before anything
is built, and that is what `training.train.run` trains.

    cfg = resolve(get_args_parser().parse_args(argv))     # the CLI
    cfg = resolve(options(task="mnist", epochs=2, out=d))  # training.compare, benchmarks, the app

On --resume, the task, variant, recipe, seed, subsets and precision come from the checkpoint's
stored config (flags given again must agree with it). What is only known once the run has
started (dataset counts, initial-weights digest, versions, times) is recorded by
training/record.py, kept apart from these settings.
"""
from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.registry import ARCHITECTURES, ModelConfig
from models.tasks import BASELINE, PRESETS, RANDOM_ERASING, RUNS_DIR, TASKS, Task, Variant, get_task
from training.checkpoint import CHECKPOINT_FILE, check_resumable, load_checkpoint
from training.cli import CliError, nonnegative_float, nonnegative_int, positive_float, positive_int
from training.data import Source, find_source
from training.precision import resolve_device, resolve_precision, run_precision


DEFAULT_CHECKPOINT_MINUTES = 5.0   # a checkpoint of VGG19-BN takes about a second to write and verify


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default once: not when there is none, nor when the help text already says it."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train",
                                description="Train a CNN Studio model and write its run directory.",
                                formatter_class=HelpFormatter)
    p.add_argument("--task", choices=list(TASKS), help="what to train (required unless --resume); folder: your "
                                                       "own images in --data-dir (DIR/<class>/*)")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), help="another architecture the task offers "
                                                                 "(folder: resnet50, the default, or vgg19_bn_32)")
    p.add_argument("--random-erasing", action="store_true", default=None,
                   help="add Random Erasing (p=0.5, area 0.02-0.4, aspect 0.3-3.3) to training batches")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="full: the task's recipe (default); quick: a short run sized for a CPU "
                        "(MNIST: one epoch; see models/tasks.py)")
    add_shared_flags(p)
    p.add_argument("--out", help="run directory (default: runs/<task>[-re]/<timestamp>)")
    p.add_argument("--seed", type=nonnegative_int, help="seed for initial weights, data order and augmentation (default 0)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from --out's checkpoint.pt, or from the named checkpoint file")
    p.add_argument("--workers", type=nonnegative_int, default=min(4, os.cpu_count() or 1),
                   help="processes that decode image files (image folders, Oxford-IIIT Pet) while training; "
                        "0: in the main process")
    p.add_argument("--pretrained", choices=["IMAGENET1K_V1", "IMAGENET1K_V2"],
                   help="ResNet50 tasks: start from torchvision's ImageNet weights (downloaded once)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (for CUDA; on the 2-core CPU it measured slower: "
                        "benchmarks/README.md)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="training arithmetic: auto = bf16 autocast on CUDA GPUs that support it and on "
                        "CPUs with bf16 instructions (AMX or AVX512-BF16), fp32 elsewhere (on a resumed run: "
                        "the precision it started with). Evaluation is always fp32")
    p.add_argument("--deterministic", action="store_true",
                   help="use deterministic algorithms (bit-identical resume on CPU; slower on GPU)")
    p.add_argument("--stop-after", type=positive_int, metavar="N",
                   help="stop cleanly after N epochs of this invocation (resume later with --resume)")
    p.add_argument("--checkpoint-every", type=nonnegative_float, default=DEFAULT_CHECKPOINT_MINUTES,
                   metavar="MINUTES", help="also save a checkpoint within an epoch when this long has passed "
                                           "since the last one (0: at epoch ends only); SIGINT/SIGTERM always "
                                           "save one at the step where they stop the run")
    ddp = p.add_argument_group("distributed (under torchrun; --batch-size is per rank)")
    ddp.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm statistics across ranks (CUDA)")
    ddp.add_argument("--lr-scaling", choices=["none", "linear"], default="none",
                     help="linear: multiply the learning rate by the number of ranks")
    ddp.add_argument("--dist-timeout", type=positive_int, default=600,
                     help="seconds before a collective with a dead rank fails instead of hanging")
    return p


def add_shared_flags(p: argparse.ArgumentParser) -> None:
    """The flags of training.train that training.compare passes on to each of its runs."""
    p.add_argument("--epochs", type=positive_int, help="epochs (default: the preset's, 40 for full)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default: the task's recipe)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default: the task's recipe)")
    p.add_argument("--data-dir", default="data", help="where datasets are downloaded / found; for --task folder, "
                                                      "the folder of class folders")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--limit-train", type=positive_int, help="train on a seeded subset of N images (smoke runs)")
    p.add_argument("--limit-val", type=positive_int, help="evaluate on a seeded subset of N images")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, summary lines only")


def options(**given) -> argparse.Namespace:
    """The flags as keyword arguments (dest names: `random_erasing=True`, `limit_train=64`),
    the parser's defaults for the rest; for callers that train without a command line."""
    args = get_args_parser().parse_args([])
    unknown = sorted(set(given) - set(vars(args)))
    if unknown:
        raise TypeError(f"unknown training option(s): {', '.join(unknown)}")
    for key, value in given.items():
        setattr(args, key, str(value) if isinstance(value, Path) else value)
    return args


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is asked to do, resolved (no "auto", no None-means-recipe-default)."""
    task: str
    variant: Variant                # baseline | random-erasing
    preset: str                     # full | quick (models/tasks.py): the recipe the overrides start from
    recipe: dict                    # every hyper-parameter used (models/tasks.py); read-only
    seed: int
    out: Path                       # the run directory
    data_dir: Path
    source: Source                  # the dataset read from data_dir, and the labels
    architecture: str | None = None  # --arch (None: the task's own)
    limit_train: int | None = None  # seeded subsets (None: the whole split)
    limit_val: int | None = None
    device: str = "cpu"             # cpu | cuda | mps (under torchrun each rank takes cuda:LOCAL_RANK)
    precision: str = "fp32"         # training arithmetic: fp32 | bf16 (autocast); evaluation is fp32
    workers: int = 4
    compile: bool = False
    deterministic: bool = False
    # Under torchrun (the number of ranks is a fact of the launch, not a setting):
    sync_bn: bool = False
    lr_scaling: str = "none"        # none | linear (peak lr x number of ranks)
    dist_timeout_s: int = 600       # a collective with a dead rank fails after this long
    resume_from: Path | None = None  # the checkpoint to continue from
    stop_after: int | None = None    # epochs of this invocation, then stop cleanly
    checkpoint_every_s: float = DEFAULT_CHECKPOINT_MINUTES * 60   # within epochs (0: at epoch ends only)
    progress: bool = True

    @property
    def spec(self) -> Task:
        return get_task(self.task).with_architecture(self.architecture)

    @property
    def model(self) -> ModelConfig:
        return self.spec.model_config(self.source.labels)

    def settings(self) -> dict:
        """What config.json records of these settings (docs/run-directory.md). Left out: paths of
        this machine (out, data_dir, resume_from) and how this invocation reports, checkpoints and stops."""
        return {**self.model.to_dict(), "task": self.task, "variant": self.variant.value, "run_name": self.out.name,
                "dataset": self.source.facts(), "preset": self.preset, "recipe": self.recipe, "seed": self.seed,
                "limit_train": self.limit_train, "limit_val": self.limit_val, "precision": self.precision}


def _checkpoint_path(args) -> Path | None:
    if not args.resume:
        return None
    if args.resume != "auto":
        return Path(args.resume)
    if args.out:
        return Path(args.out) / CHECKPOINT_FILE
    raise SystemExit("--resume needs --out RUN_DIR (or a checkpoint path)")


def _out_dir(args, task: str, variant: Variant) -> Path:
    if args.out:
        return Path(args.out)
    if args.resume and args.resume != "auto":
        return Path(args.resume).parent
    return Path(RUNS_DIR) / variant.task_folder(task) / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def resolve(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of these flags (and, with --resume, of the checkpoint they name)."""
    ckpt_path = _checkpoint_path(args)
    checkpoint = load_checkpoint(ckpt_path) if ckpt_path else None
    stored: dict = (checkpoint.get("config") or {}) if checkpoint is not None else {}
    task_name = args.task or stored.get("task")
    if not task_name:
        raise SystemExit(f"--task is required ({', '.join(TASKS)})")
    base_task = get_task(task_name)
    architecture = args.arch or stored.get("architecture")
    try:
        task = base_task.with_architecture(architecture)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.pretrained and task.architecture != "resnet50":
        raise CliError(f"--pretrained: ImageNet weights are for ResNet50, not {task.architecture}")
    variant = (RANDOM_ERASING if args.random_erasing else BASELINE) if args.random_erasing is not None \
        else Variant.of(stored)
    source = find_source(task, args.data_dir)
    pick = lambda arg, key: arg if arg is not None else stored.get(key)  # noqa: E731
    # Resuming starts from the stored recipe; flags given again must agree with it (checked below).
    if stored and args.preset and args.preset != stored.get("preset", "full"):
        raise SystemExit(f"--preset {args.preset}: this run was started with --preset {stored.get('preset', 'full')}")
    preset = args.preset or stored.get("preset") or "full"
    base = stored["recipe"] if stored else \
        task.resolved_recipe(preset=preset, variant=variant, binary=len(source.labels) == 2)
    recipe = override_recipe(base, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    if args.pretrained:
        recipe["pretrained"] = args.pretrained
    device = resolve_device(args.device)
    precision = run_precision(args.precision, stored.get("precision"), device)
    precision = "fp32" if resolve_precision(precision, device) is None else "bf16"
    out = _out_dir(args, task.name, variant)
    cfg = RunConfig(
        task=task.name, variant=variant, preset=preset, recipe=recipe,
        seed=pick(args.seed, "seed") or 0, out=out, data_dir=Path(args.data_dir), source=source,
        architecture=None if task.architecture == base_task.architecture else task.architecture,
        limit_train=pick(args.limit_train, "limit_train"), limit_val=pick(args.limit_val, "limit_val"),
        device=device.type, precision=precision, workers=args.workers,
        compile=args.compile, deterministic=args.deterministic,
        sync_bn=args.sync_bn, lr_scaling=args.lr_scaling, dist_timeout_s=args.dist_timeout,
        resume_from=ckpt_path, stop_after=args.stop_after, checkpoint_every_s=args.checkpoint_every * 60,
        progress=not args.no_progress)
    if checkpoint is not None:
        check_resumable(checkpoint, cfg.settings(), ckpt_path)
    elif (out / CHECKPOINT_FILE).exists():
        raise SystemExit(f"{out} already holds a run; continue it with --resume --out {out}, or choose another --out")
    return cfg


def override_recipe(recipe: dict, *, epochs: int | None = None, batch_size: int | None = None,
                    lr: float | None = None) -> dict:
    """A copy of `recipe` with the CLI's values where given (None keeps the recipe's)."""
    recipe = copy.deepcopy(recipe)
    if epochs is not None:
        recipe["epochs"] = epochs
    if batch_size is not None:
        recipe["batch_size"] = batch_size
    if lr is not None:
        recipe["optimizer"]["lr"] = lr
    return recipe
