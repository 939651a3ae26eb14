"""Train one task end to end and write its run directory (docs/run-directory.md).

    python -m training.train --task cifar10
    python -m training.train --task mnist
    python -m training.train --task catsdogs [--random-erasing]
    python -m training.train --resume --out runs/mnist/20261129-170000

Structure after torchvision's classification reference: get_args_parser / main, with
train_one_epoch / evaluate in training/engine.py.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import platform
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torchvision
from PIL import Image

import models
from models.artifact import save_release
from models.atomic import atomic_write, atomic_write_json, remove_stale_temps
from models.augment import EvalTransform, TrainAugment
from models.registry import create_model
from training.checkpoint import (CHECKPOINT_FILE, CheckpointError, check_resumable, config_hash,
                                 load_checkpoint, rng_state, save_checkpoint, set_rng_state)
from training.cli import (CliError, check_writable_folder, nonnegative_int, one_line, positive_float, positive_int,
                          run_cli)
from training.curves import write_curves
from training.progress import RunProgress
from training import distributed
from training.data import DatasetError, DeviceLoader, Split, load_splits
from training.divergence import DivergedError, check_epoch
from training.engine import NonFiniteLossError, evaluate, make_loss, train_one_epoch
from training.tasks import PRESETS, TASKS, TaskSpec, get_task, override_recipe


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train",
                                description="Train a CNN Studio model and write its run directory.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), help="what to train (required unless --resume)")
    p.add_argument("--random-erasing", action="store_true", default=None,
                   help="add Random Erasing (p=0.5, area 0.02-0.4, aspect 0.3-3.3) to training batches")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="full: the task's recipe (default); quick: a short run sized for a CPU "
                        "(MNIST: one epoch; see training/tasks.py)")
    p.add_argument("--epochs", type=positive_int, help="epochs (default: the preset's, 40 for full)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default: the task's recipe)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (default: the task's recipe)")
    p.add_argument("--data-dir", default="data", help="where datasets are downloaded / found")
    p.add_argument("--out", help="run directory (default: runs/<task>[-re]/<timestamp>)")
    p.add_argument("--seed", type=nonnegative_int, help="seed for initial weights, data order and augmentation (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from --out's checkpoint.pt, or from the named checkpoint file")
    p.add_argument("--limit-train", type=positive_int, help="train on a seeded subset of N images (smoke runs)")
    p.add_argument("--limit-val", type=positive_int, help="evaluate on a seeded subset of N images")
    p.add_argument("--workers", type=nonnegative_int, default=4, help="threads for decoding image folders")
    p.add_argument("--loader", choices=["device", "dataloader"], default="device",
                   help="device: whole splits held as uint8 on the device, augmented in batches; "
                        "dataloader: per-image transforms in a torch DataLoader with --workers processes "
                        "(training/usual.py), for image folders too large for memory")
    p.add_argument("--pretrained", choices=["IMAGENET1K_V1", "IMAGENET1K_V2"],
                   help="catsdogs: start ResNet50 from torchvision's ImageNet weights (downloaded once)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (for CUDA; on the 2-core CPU it measured slower: "
                        "benchmarks/README.md)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="training arithmetic: auto = bf16 autocast on CUDA GPUs that support it and on "
                        "CPUs with bf16 matrix units (Intel AMX), fp32 elsewhere (on a resumed run: the "
                        "precision it started with). Evaluation is always fp32")
    p.add_argument("--deterministic", action="store_true",
                   help="use deterministic algorithms (bit-identical resume on CPU; slower on GPU)")
    p.add_argument("--stop-after", type=positive_int, metavar="N",
                   help="stop cleanly after N epochs of this invocation (resume later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, summary lines only")
    ddp = p.add_argument_group("distributed (under torchrun; --batch-size is per rank)")
    ddp.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm statistics across ranks (CUDA)")
    ddp.add_argument("--lr-scaling", choices=["none", "linear"], default="none",
                     help="linear: multiply the learning rate by the number of ranks")
    ddp.add_argument("--dist-timeout", type=positive_int, default=600,
                     help="seconds before a collective with a dead rank fails instead of hanging")
    return p


# --- small pieces ---------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("--device mps: MPS is not available")
    return torch.device(name)


def cpu_has_bf16_matrix_units() -> bool:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training (None: plain fp32).

    auto picks bf16 where it was measured faster (benchmarks/step_settings.py): CUDA GPUs with
    bf16, and CPUs with AMX, where a VGG19-BN step runs ~1.5x and a ResNet50 step ~2.5x faster
    than in fp32 (2-core Xeon). Without AMX, oneDNN emulates or half-uses bf16 and fp32 stays.
    """
    if precision == "fp32":
        return None
    supported = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if precision == "bf16":
        if not supported:
            raise SystemExit(f"--precision bf16: not supported on {device}")
        return torch.bfloat16
    if device.type == "cuda" and supported:
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16_matrix_units() else None


def use_channels_last(device: torch.device, autocast_dtype: torch.dtype | None) -> bool:
    """channels_last: faster on CUDA, and on CPU with bf16; slower in fp32 on CPU (benchmarks/step_settings.py)."""
    return device.type == "cuda" or autocast_dtype is not None


def run_precision(requested: str, stored: str | None, device: torch.device) -> str:
    """The --precision to train with: a resumed run (`stored`) keeps its arithmetic under auto."""
    if requested != "auto" or stored is None:
        return requested
    if stored == "bf16" and device.type != "cpu" and resolve_precision("auto", device) is None:
        raise SystemExit(f"this run trained in bf16, which {device} does not support; "
                         f"resume with --precision fp32 to continue it in fp32")
    return stored


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes, bytes), in key order."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def build_optimizer(model: torch.nn.Module, opt: dict, device: torch.device) -> torch.optim.Optimizer:
    # Fused kernels on CUDA and on CPU: measured on the 2-core CPU (VGG19-BN, 20M parameters), one
    # SGD step takes 38 ms fused vs 198 ms foreach (Adam 60 vs 239 ms), ~10% of a whole training step.
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)  # no weight decay on BN and biases
    groups = [{"params": decay, "weight_decay": opt.get("weight_decay", 0.0)},
              {"params": no_decay, "weight_decay": 0.0}]
    if opt["name"] == "sgd":
        return torch.optim.SGD(groups, lr=opt["lr"], momentum=opt.get("momentum", 0.0),
                               nesterov=opt.get("nesterov", False), **fused)
    if opt["name"] == "adam":
        return torch.optim.Adam(groups, lr=opt["lr"], **fused)
    if opt["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=opt["lr"], **fused)
    raise ValueError(f"unknown optimizer {opt['name']!r}")


def build_scheduler(optimizer, sched: dict, *, epochs: int, steps_per_epoch: int):
    total = epochs * steps_per_epoch
    if sched["name"] == "onecycle":
        pct_start = sched.get("pct_start", 0.25)
        if math.isclose(pct_start * total, 1.0):
            # OneCycleLR divides by (pct_start * total_steps - 1): a warm-up of exactly one step (4 steps
            # at 0.25) raised ZeroDivisionError; half a step more is the nearest schedule it can build.
            pct_start = 1.5 / total
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
            pct_start=pct_start, div_factor=sched.get("div_factor", 25.0),
            final_div_factor=sched.get("final_div_factor", 1e4), anneal_strategy="cos",
            cycle_momentum=False)
    if sched["name"] == "cosine":
        warmup = min(sched.get("warmup_epochs", 0) * steps_per_epoch, max(total - 1, 0))
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total - warmup, 1))
        if not warmup:
            return cosine
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
    if sched["name"] == "constant":
        return None
    raise ValueError(f"unknown schedule {sched['name']!r}")


def save_examples(run_dir: Path, val: Split, labels: tuple[str, ...], per_class: int) -> list[dict]:
    """A few validation images per class as PNG, for the app's examples; index.json lists them."""
    folder = run_dir / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for class_id, label in enumerate(labels):
        positions = (val.labels == class_id).nonzero().flatten()[:per_class].tolist()
        for k, pos in enumerate(positions):
            img = val.images[pos]
            arr = img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()
            name = f"{class_id:02d}_{label}_{k}.png" if per_class > 1 else f"{class_id:02d}_{label}.png"
            atomic_write(folder / name, lambda p, a=arr: Image.fromarray(a).save(p, format="PNG"))
            entries.append({"file": name, "label": label, "index": int(val.indices[pos])})
    atomic_write_json(folder / "index.json", entries)
    return entries


def default_out(task: str, random_erasing: bool) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}{'-re' if random_erasing else ''}" / stamp


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cnn_studio": models.__version__}


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while stopping: stop at once (what was saved stays as it was)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """Set by SIGINT/SIGTERM; the training loop checks it between steps."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:          # a second Ctrl-C: stop now
            raise StopNow(signum)
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this step; the epoch in progress is "
              f"discarded, the checkpoint of the last finished epoch is kept (again to stop at once)",
              file=sys.stderr, flush=True)

    def install(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:               # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def restore(self):
        for s, h in self._previous.items():
            signal.signal(s, h)


# --- the run --------------------------------------------------------------------------------

def resolve_run(args) -> tuple[TaskSpec, dict, Path, dict | None]:
    """Task, run config, run directory and (when resuming) the checkpoint."""
    checkpoint = None
    stored: dict = {}
    if args.resume:
        if args.resume != "auto":
            ckpt_path = Path(args.resume)
        elif args.out:
            ckpt_path = Path(args.out) / CHECKPOINT_FILE
        else:
            raise SystemExit("--resume needs --out RUN_DIR (or a checkpoint path)")
        checkpoint = load_checkpoint(ckpt_path)
        stored = checkpoint.get("config") or {}
    task_name = args.task or stored.get("task")
    if not task_name:
        raise SystemExit("--task is required (cifar10, mnist or catsdogs)")
    task = get_task(task_name)
    random_erasing = args.random_erasing if args.random_erasing is not None else (
        stored.get("variant") == "random-erasing")
    pick = lambda arg, key: arg if arg is not None else stored.get(key)  # noqa: E731
    # Resuming starts from the stored recipe; flags given again must agree with it (checked below).
    if stored and args.preset and args.preset != stored.get("preset", "full"):
        raise SystemExit(f"--preset {args.preset}: this run was started with --preset {stored.get('preset', 'full')}")
    preset = args.preset or stored.get("preset") or "full"
    base = stored["recipe"] if stored else task.resolved_recipe(random_erasing=random_erasing, preset=preset)
    recipe = override_recipe(base, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    if args.pretrained:
        recipe["pretrained"] = args.pretrained
    seed = pick(args.seed, "seed") or 0
    if args.out:
        out = Path(args.out)
    elif args.resume and args.resume != "auto":
        out = Path(args.resume).parent
    else:
        out = default_out(task.name, random_erasing)
    config = {
        **task.model.to_dict(),
        "task": task.name,
        "variant": "random-erasing" if random_erasing else "baseline",
        "run_name": out.name,
        "dataset": {"name": task.dataset.name, "hub_id": task.dataset.hub_id, "source": task.dataset.source,
                    "train_split": task.dataset.train_split, "val_split": task.dataset.val_split},
        "preset": preset,
        "recipe": recipe,
        "seed": seed,
        "limit_train": pick(args.limit_train, "limit_train"),
        "limit_val": pick(args.limit_val, "limit_val"),
    }
    if checkpoint is not None:
        check_resumable(checkpoint, config, Path(args.resume if args.resume != "auto" else out / CHECKPOINT_FILE))
    elif (out / CHECKPOINT_FILE).exists():
        raise SystemExit(f"{out} already holds a run; continue it with --resume --out {out}, or choose another --out")
    return task, config, out, checkpoint


class NullWriter:
    """TensorBoard stand-in for ranks other than 0, which write nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def main(args) -> Path:
    device = resolve_device(args.device)
    rank_info, device = distributed.setup(device, args.dist_timeout)
    try:
        return _main(args, device, rank_info)
    finally:
        distributed.cleanup()


def _main(args, device: torch.device, rank_info: distributed.DistInfo) -> Path:
    is_main = rank_info.is_main
    task, config, run_dir, checkpoint = resolve_run(args)
    run_dir = Path(distributed.broadcast_object(str(run_dir)))  # one run directory for all ranks
    if is_main:
        check_writable_folder(run_dir, "--out")   # before any data is read or downloaded; creates nothing
    config["run_name"] = run_dir.name
    distributed.barrier()  # every rank has checked the run directory before rank 0 writes to it
    recipe = config["recipe"]
    seed = config["seed"]
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = not args.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)

    split_loader, batch_loader = load_splits, DeviceLoader
    if args.loader == "dataloader":   # same splits and batch contract, read per image (training/usual.py)
        from training.usual import dataloader_path
        split_loader, batch_loader = dataloader_path(workers=args.workers)
    config["data_loader"] = args.loader
    train_split, val_split = split_loader(task, args.data_dir, limit_train=config["limit_train"],
                                         limit_val=config["limit_val"], seed=seed, workers=args.workers)
    config["dataset"].update(train_images=len(train_split), val_images=len(val_split),
                             skipped_unreadable=train_split.skipped + val_split.skipped)

    torch.manual_seed(seed)  # initial weights depend on the seed only, not on the variant
    model = create_model(task.model)
    if recipe.get("pretrained"):
        load_pretrained_backbone(model, recipe["pretrained"])
    config["init_sha256"] = weights_sha256(model)
    config["parameters"] = sum(p.numel() for p in model.parameters())
    model.to(device)
    stored = (checkpoint.get("config") or {}).get("precision") if checkpoint is not None else None
    autocast_dtype = resolve_precision(run_precision(args.precision, stored, device), device)
    config["precision"] = "bf16" if autocast_dtype is not None else "fp32"
    channels_last = use_channels_last(device, autocast_dtype)
    if channels_last:
        model.to(memory_format=torch.channels_last)

    batch_size = recipe["batch_size"]
    world = rank_info.world_size
    lr_factor = world if args.lr_scaling == "linear" else 1
    config["distributed"] = {"world_size": world, "per_rank_batch_size": batch_size,
                             "effective_batch_size": batch_size * world, "lr_scaling": args.lr_scaling,
                             "effective_lr": recipe["optimizer"]["lr"] * lr_factor, "sync_bn": args.sync_bn}
    shard = {"rank": rank_info.rank, "world_size": world}
    train_loader = batch_loader(train_split, batch_size=batch_size, device=device, shuffle=True,
                                drop_last=True, seed=seed, **shard,
                                transform=TrainAugment.from_recipe(recipe["augment"], task.model))
    val_loader = batch_loader(val_split, batch_size=max(batch_size, 256), device=device, shuffle=False, **shard,
                              transform=EvalTransform.from_config(task.model))
    train_model = model
    if rank_info.enabled:
        if args.sync_bn:
            if not cuda:
                raise SystemExit("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        if is_main:
            print(f"distributed: {world} ranks x {batch_size} images = {batch_size * world} per step, "
                  f"lr {config['distributed']['effective_lr']:g} ({args.lr_scaling} scaling)")
    optimizer = build_optimizer(model, {**recipe["optimizer"], "lr": config["distributed"]["effective_lr"]}, device)
    scheduler = build_scheduler(optimizer, recipe["schedule"], epochs=recipe["epochs"],
                                steps_per_epoch=len(train_loader))
    loss_fn = make_loss(recipe["loss"], task.model)
    step_model = torch.compile(train_model) if args.compile else train_model
    # Evaluation runs on each rank's shard without DDP (no per-batch collectives: shards may
    # differ in length); engine.evaluate reduces the totals afterwards.
    eval_model = step_model if not rank_info.enabled else model

    history: list[dict] = []
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler"):
            scheduler.load_state_dict(checkpoint["scheduler"])
        history = list(checkpoint["history"])
        start_epoch = int(checkpoint["epoch"])
        config["init_sha256"] = checkpoint["config"]["init_sha256"]
        config["created"] = checkpoint["config"].get("created")
        set_rng_state(checkpoint["rng"])
        if is_main:
            print(f"resuming {run_dir} after epoch {start_epoch}/{recipe['epochs']}")
    else:
        config["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config.update(device=str(device), versions=versions())
    steps_per_epoch = len(train_loader)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_examples(run_dir, val_split, task.model.labels, per_class=1 if task.model.num_classes > 2 else 4)
        if checkpoint is not None:
            remove_stale_temps(run_dir)   # half-written files of a killed run (never the real ones)
        from torch.utils.tensorboard import SummaryWriter
        # TensorBoard steps count optimizer steps taken: step losses at 1..N, epoch E's scalars
        # at E * steps_per_epoch. On resume, purge_step drops whatever a killed or interrupted
        # run logged after the checkpoint, so every step has exactly one value.
        writer = SummaryWriter(log_dir=str(run_dir / "tb"),
                               purge_step=start_epoch * steps_per_epoch + 1 if checkpoint is not None else None)
    else:
        writer = NullWriter()

    def checkpoint_state(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "history": history, "rng": rng_state(),
                "config": config, "config_hash": config_hash(config)}

    ckpt_path = run_dir / CHECKPOINT_FILE
    if checkpoint is None and is_main:
        save_checkpoint(ckpt_path, checkpoint_state(0))   # a resumable point before the first step

    progress = RunProgress(run_dir if is_main else None, config, epochs=recipe["epochs"],
                           steps_per_epoch=steps_per_epoch, batch_size=batch_size * world)
    progress.last_val_accuracy = history[-1]["val_accuracy"] if history else None
    stop = StopFlag().install()
    # Under torchrun all ranks must stop at the same step, or the others wait in a collective.
    should_stop = (lambda: distributed.any_rank(stop(), device)) if rank_info.enabled else stop
    last_eval = None
    epochs_this_run = 0
    try:
        for epoch in range(start_epoch + 1, recipe["epochs"] + 1):
            train_loader.set_epoch(epoch)
            base_step = (epoch - 1) * steps_per_epoch
            lr = optimizer.param_groups[0]["lr"]
            progress.start_epoch(epoch)

            def on_step(s, loss, base_step=base_step):
                writer.add_scalar("train/step_loss", loss, base_step + s + 1)
                progress.on_step(s + 1)
            tr = train_one_epoch(step_model, train_loader, optimizer, scheduler, loss_fn, task.model,
                                 device=device, epoch=epoch, autocast_dtype=autocast_dtype,
                                 channels_last=channels_last, should_stop=should_stop,
                                 progress=not args.no_progress and is_main,
                                 on_step=on_step,
                                 on_lr=lambda s, lr: writer.add_scalar("train/lr", lr, base_step + s + 1))
            if tr["interrupted"]:
                return _interrupted(stop, run_dir, epoch, writer, progress)
            progress.write("evaluating", force=True)
            # Evaluation in float32 (no autocast), as training.evaluate and the app run the
            # released weights, so metrics.json is reproduced exactly on every device.
            ev = evaluate(eval_model, val_loader, loss_fn, task.model, device=device, channels_last=channels_last)
            check_epoch(epoch, model, ev)
            last_eval = ev
            row = {"epoch": epoch, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
                   "val_loss": ev["loss"], "val_accuracy": ev["accuracy"], "lr": lr,
                   "seconds": tr["seconds"], "cpu_seconds": round(tr["cpu_seconds"], 2),
                   "images_per_s": tr["images_per_s"]}
            history.append(row)
            progress.end_epoch(ev["accuracy"])
            step = epoch * steps_per_epoch
            for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                writer.add_scalar(key.replace("_", "/", 1), row[key], step)
            writer.add_scalar("train/images_per_second", row["images_per_s"], step)   # lr: per step, above
            writer.flush()
            if is_main:
                # The checkpoint first: history.json is never ahead of what --resume can continue from.
                save_checkpoint(ckpt_path, checkpoint_state(epoch))
                atomic_write_json(run_dir / "history.json", history)
                print(f"epoch {epoch}/{recipe['epochs']}  train loss {tr['loss']:.4f} acc {tr['accuracy']:.4f}  "
                      f"val loss {ev['loss']:.4f} acc {ev['accuracy']:.4f}  lr {lr:.2e}  "
                      f"{tr['images_per_s']:.0f} img/s  {tr['seconds']:.1f}s", flush=True)
            epochs_this_run += 1
            if should_stop():
                return _interrupted(stop, run_dir, epoch + 1, writer, progress)
            if args.stop_after and epochs_this_run >= args.stop_after and epoch < recipe["epochs"]:
                writer.close()
                if is_main:
                    message = (f"stopped after epoch {epoch} as asked; continue with: "
                               f"python -m training.train --resume --out {run_dir}")
                    progress.step = steps_per_epoch
                    progress.write("stopped", message, force=True)
                    print(message)
                return run_dir
    except (NonFiniteLossError, DivergedError) as e:
        writer.close()
        progress.write("failed", f"{e}; the last good checkpoint is untouched", force=True)
        raise DivergedError(f"{e}; no release written; the last good checkpoint is {ckpt_path} "
                            f"(epoch {epoch - 1})") from e
    except StopNow as e:
        return _interrupted(stop, run_dir, epoch, writer, progress, signum=e.signum)
    except OSError as e:   # a full disk or a vanished folder while saving the epoch
        writer.close()
        progress.write("failed", one_line(e), force=True)
        raise CliError(f"{one_line(e)}; stopped at epoch {epoch}; {ckpt_path} holds the last epoch it saved, "
                       f"resume with: python -m training.train --resume --out {run_dir}") from e
    finally:
        stop.restore()

    if last_eval is None:   # resumed a finished run: evaluate the weights once more
        last_eval = evaluate(eval_model, val_loader, loss_fn, task.model, device=device, channels_last=channels_last)
    writer.close()
    if is_main:
        progress.write("evaluating", force=True)
        finish_run(run_dir, model, config, history, last_eval, val_split)
        progress.epoch, progress.step = recipe["epochs"], steps_per_epoch
        progress.write("finished", f"done: val accuracy {last_eval['accuracy']:.4f} on "
                                   f"{last_eval['num_images']} images", force=True)
    distributed.barrier()
    return run_dir


def _interrupted(stop: StopFlag, run_dir: Path, epoch: int, writer, progress: RunProgress,
                 signum: int | None = None) -> Path:
    writer.close()
    code = 128 + (signum or stop.signal or signal.SIGINT)
    how = "stopped at once" if signum else "stopped"
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else \
        "the checkpoint of the initial state (before epoch 1) is kept"
    message = (f"interrupted: {how} during epoch {epoch}, which is discarded; {kept}. "
               f"Resume with: python -m training.train --resume --out {run_dir}")
    progress.epoch, progress.step = epoch - 1, 0
    progress.write("stopped", message, force=True)
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(code)


def finish_run(run_dir: Path, model, config: dict, history: list[dict], ev: dict, val_split: Split) -> None:
    """Write the release files: metrics, predictions, weights + config, curves, card."""
    cfg_labels = config["labels"]
    metrics = {"accuracy": ev["accuracy"], "loss": ev["loss"], "split": config["dataset"]["val_split"],
               "num_images": ev["num_images"], "epoch": history[-1]["epoch"] if history else 0,
               "labels": cfg_labels, "per_class_accuracy": ev["per_class_accuracy"],
               "confusion_matrix": ev["confusion_matrix"]}
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(run_dir / "predictions.json", predictions_record(ev, val_split, config))
    title = f"{config['task']} ({config['variant']}), {config['architecture']}"
    write_curves(run_dir, history, title)
    save_release(run_dir, model, config)   # last but the card: its SHA256SUMS lists the files above
    from cards import write_card
    write_card(run_dir)
    print(f"done: {run_dir}  val accuracy {metrics['accuracy']:.4f} on {metrics['num_images']} images")


def predictions_record(ev: dict, val_split: Split, config: dict) -> dict:
    probs = ev["probabilities"]
    return {"split": config["dataset"]["val_split"],
            "indices": val_split.indices[ev["positions"]].tolist(),
            "labels": val_split.labels[ev["positions"]].tolist(),
            "predicted": probs.argmax(dim=1).tolist(),
            "probabilities": [[round(float(p), 6) for p in row] for row in probs]}


def load_pretrained_backbone(model: torch.nn.Module, weights_name: str) -> None:
    """ResNet50 from torchvision's ImageNet weights (downloaded once into the torch hub cache), new fc."""
    from torchvision.models import ResNet50_Weights
    state = ResNet50_Weights[weights_name].get_state_dict(progress=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"fc.weight", "fc.bias"}:
        raise RuntimeError(f"pretrained weights do not fit: missing {missing}, unexpected {unexpected}")


if __name__ == "__main__":
    import logging
    from models.artifact import ArtifactError
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(run_cli(main, get_args_parser(),
                     errors=(CheckpointError, DatasetError, DivergedError, ArtifactError)))
