"""Train one task end to end and write its run directory (docs/run-directory.md).

    python -m training.train --task cifar10
    python -m training.train --task mnist
    python -m training.train --task catsdogs [--random-erasing]
    python -m training.train --resume --out runs/mnist/20261129-170000

After torchvision's classification reference: `main` turns the flags into a frozen RunConfig
(training/run_config.py) and `run(cfg)` is the recipe of a run, read top to bottom; the
parts live beside it (engine: train_one_epoch / evaluate; optim; precision; signals;
record: what the run measured; release: the files it leaves). `training.compare`, the
benchmarks and the app call `run(cfg)` directly.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from models.atomic import atomic_write_json, remove_stale_temps
from models.augment import EvalTransform, TrainAugment
from models.registry import create_model
from training import distributed
from training.checkpoint import (CHECKPOINT_FILE, CheckpointError, config_hash, load_checkpoint, rng_state,
                                 save_checkpoint, set_rng_state)
from training.cli import CliError, check_writable_folder, one_line, run_cli
from training.data import DatasetError, DeviceLoader, Split, load_splits
from training.divergence import DivergedError, check_epoch
from training.engine import NonFiniteLossError, evaluate, make_loss, train_one_epoch
from training.optim import build_optimizer, build_scheduler
from training.precision import autocast_dtype, set_torch_flags, use_channels_last
from training.progress import RunProgress
from training.record import (RunRecord, config_json, distributed_facts, hardware, now_utc, versions,
                             weights_sha256)
from training.release import save_examples, write_release
from training.run_config import RunConfig, get_args_parser, options, resolve
from training.signals import StopFlag, StopNow, exit_code, interrupted_message

__all__ = ["get_args_parser", "main", "options", "resolve", "run", "RunConfig"]


def main(args) -> Path:
    """The command line: resolve the flags once, set the process-wide torch flags, train."""
    cfg = resolve(args)
    set_torch_flags(torch.device(cfg.device), deterministic=cfg.deterministic)
    return run(cfg)


def run(cfg: RunConfig) -> Path:
    """Train (or continue) the run `cfg` describes; returns its run directory."""
    rank_info, device = distributed.setup(torch.device(cfg.device), cfg.distributed.timeout_s)
    try:
        # One run directory for all ranks (a default --out is a timestamp, rank 0's wins).
        cfg = dataclasses.replace(cfg, out=Path(distributed.broadcast_object(str(cfg.out))))
        if rank_info.is_main:
            check_writable_folder(cfg.out, "--out")   # before any data is read or downloaded; creates nothing
        distributed.barrier()  # every rank has checked the run directory before rank 0 writes to it
        return _run(cfg, device, rank_info)
    finally:
        distributed.cleanup()


def _run(cfg: RunConfig, device: torch.device, rank_info: distributed.DistInfo) -> Path:
    task, run_dir = cfg.spec, cfg.out
    train_split, val_split = load_data(cfg)
    torch.manual_seed(cfg.seed)  # initial weights depend on the seed only, not on the variant
    model = create_model(task.model)
    if cfg.recipe.get("pretrained"):
        load_pretrained_backbone(model, cfg.recipe["pretrained"])
    init_sha256 = weights_sha256(model)
    parts = build_parts(cfg, model, device, rank_info, train_split, val_split)
    checkpoint = load_checkpoint(cfg.resume_from) if cfg.resume_from is not None else None
    history, start_epoch = restore(parts, checkpoint, run_dir, rank_info.is_main, cfg.recipe["epochs"])
    record = RunRecord(
        train_images=len(train_split), val_images=len(val_split),
        skipped_unreadable=train_split.skipped + val_split.skipped,
        init_sha256=checkpoint["config"]["init_sha256"] if checkpoint else init_sha256,
        parameters=sum(p.numel() for p in model.parameters()), device=str(device),
        distributed=distributed_facts(cfg, rank_info.world_size),
        created=checkpoint["config"].get("created") if checkpoint else now_utc(), versions=versions(),
        hardware=hardware(device))
    log = RunLog(cfg, config_json(cfg, record), parts, history, rank_info, resumed=checkpoint is not None)
    if rank_info.is_main:
        save_examples(run_dir, val_split, task.model.labels, per_class=1 if task.model.num_classes > 2 else 4)
    log.open(start_epoch)
    last_eval = train_epochs(cfg, parts, log, start_epoch, device, rank_info)
    if last_eval is None:   # stopped early as asked (--stop-after)
        return run_dir
    if rank_info.is_main:
        log.progress.write("evaluating", force=True)
        write_release(run_dir, model, log.config, history, last_eval, val_split)
        log.progress.epoch, log.progress.step = cfg.recipe["epochs"], log.steps_per_epoch
        log.progress.write("finished", f"done: val accuracy {last_eval['accuracy']:.4f} on "
                                       f"{last_eval['num_images']} images", force=True)
    distributed.barrier()
    return run_dir


def load_data(cfg: RunConfig) -> tuple[Split, Split]:
    """The training and validation splits, through the device path or the DataLoader path."""
    split_loader = load_splits
    if cfg.data_loader == "dataloader":   # same splits and batch contract, read per image (training/usual.py)
        from training.usual import dataloader_path
        split_loader, _ = dataloader_path(workers=cfg.workers)
    return split_loader(cfg.spec, cfg.data_dir, limit_train=cfg.limit_train, limit_val=cfg.limit_val,
                        seed=cfg.seed, workers=cfg.workers)


@dataclass
class Parts:
    """The pieces one training step and one evaluation use."""
    model: nn.Module            # the bare model: its state dict is what checkpoints and releases hold
    step_model: nn.Module       # what trains: DDP-wrapped and/or compiled
    eval_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: nn.Module
    train_loader: object
    val_loader: object
    autocast_dtype: torch.dtype | None
    channels_last: bool


def build_parts(cfg: RunConfig, model: nn.Module, device: torch.device, rank_info: distributed.DistInfo,
                train_split: Split, val_split: Split) -> Parts:
    task, recipe = cfg.spec, cfg.recipe
    model.to(device)
    amp = autocast_dtype(cfg.precision)
    channels_last = use_channels_last(device, amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    batch_loader = DeviceLoader
    if cfg.data_loader == "dataloader":
        from training.usual import dataloader_path
        _, batch_loader = dataloader_path(workers=cfg.workers)
    shard = {"rank": rank_info.rank, "world_size": rank_info.world_size}
    batch_size = recipe["batch_size"]
    train_loader = batch_loader(train_split, batch_size=batch_size, device=device, shuffle=True,
                                drop_last=True, seed=cfg.seed, **shard,
                                transform=TrainAugment.from_recipe(recipe["augment"], task.model))
    val_loader = batch_loader(val_split, batch_size=max(batch_size, 256), device=device, shuffle=False, **shard,
                              transform=EvalTransform.from_config(task.model))
    model, train_model = wrap_distributed(cfg, model, device, rank_info)
    lr = distributed_facts(cfg, rank_info.world_size)["effective_lr"]
    optimizer = build_optimizer(model, {**recipe["optimizer"], "lr": lr}, device)
    scheduler = build_scheduler(optimizer, recipe["schedule"], epochs=recipe["epochs"],
                                steps_per_epoch=len(train_loader))
    step_model = torch.compile(train_model) if cfg.compile else train_model
    # Evaluation runs on each rank's shard without DDP (no per-batch collectives: shards may
    # differ in length); engine.evaluate reduces the totals afterwards.
    eval_model = step_model if not rank_info.enabled else model
    return Parts(model=model, step_model=step_model, eval_model=eval_model, optimizer=optimizer,
                 scheduler=scheduler, loss_fn=make_loss(recipe["loss"], task.model), train_loader=train_loader,
                 val_loader=val_loader, autocast_dtype=amp, channels_last=channels_last)


def wrap_distributed(cfg: RunConfig, model: nn.Module, device: torch.device,
                     rank_info: distributed.DistInfo) -> tuple[nn.Module, nn.Module]:
    """(model, what trains): under torchrun, DistributedDataParallel (with SyncBatchNorm if asked)."""
    if not rank_info.enabled:
        return model, model
    if cfg.distributed.sync_bn:
        if device.type != "cuda":
            raise SystemExit("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank_info.is_main:
        facts = distributed_facts(cfg, rank_info.world_size)
        print(f"distributed: {facts['world_size']} ranks x {facts['per_rank_batch_size']} images = "
              f"{facts['effective_batch_size']} per step, lr {facts['effective_lr']:g} "
              f"({cfg.distributed.lr_scaling} scaling)")
    return model, train_model


def restore(parts: Parts, checkpoint: dict | None, run_dir: Path, is_main: bool,
            epochs: int) -> tuple[list[dict], int]:
    """(history, last finished epoch): the checkpoint's on resume, ([], 0) for a new run."""
    if checkpoint is None:
        return [], 0
    parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    if parts.scheduler is not None and checkpoint.get("scheduler"):
        parts.scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    start_epoch = int(checkpoint["epoch"])
    if is_main:
        print(f"resuming {run_dir} after epoch {start_epoch}/{epochs}")
    return list(checkpoint["history"]), start_epoch


PROGRESS_LINE_SECONDS = 10   # how often the whole-run progress line is printed


class RunLog:
    """What the run writes while it trains: TensorBoard, history.json, checkpoint.pt, progress.json,
    one line per epoch. Only rank 0 writes; other ranks get a writer that discards."""

    def __init__(self, cfg: RunConfig, config: dict, parts: Parts, history: list[dict],
                 rank_info: distributed.DistInfo, *, resumed: bool):
        self.cfg, self.config, self.parts, self.history = cfg, config, parts, history
        self.is_main, self.resumed = rank_info.is_main, resumed
        self.run_dir = cfg.out
        self.ckpt_path = cfg.out / CHECKPOINT_FILE
        self.steps_per_epoch = len(parts.train_loader)
        self.writer = NullWriter()
        self.progress = RunProgress(self.run_dir if self.is_main else None, config, epochs=cfg.recipe["epochs"],
                                    steps_per_epoch=self.steps_per_epoch,
                                    batch_size=cfg.recipe["batch_size"] * rank_info.world_size)
        self.progress.last_val_accuracy = history[-1]["val_accuracy"] if history else None
        self.last_line = time.monotonic()

    def open(self, start_epoch: int) -> None:
        if not self.is_main:
            return
        cfg, images = self.cfg, self.steps_per_epoch * self.progress.batch_size
        print(f"{'resuming' if self.resumed else 'training'} {cfg.task} ({cfg.variant.value}, preset {cfg.preset}) "
              f"into {self.run_dir}: device {self.config['device']}, precision {cfg.precision}, "
              f"{cfg.recipe['epochs']} epochs of {images:,} images ({self.steps_per_epoch} steps of "
              f"{self.progress.batch_size})", flush=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.resumed:
            remove_stale_temps(self.run_dir)   # half-written files of a killed run (never the real ones)
        from torch.utils.tensorboard import SummaryWriter
        # TensorBoard steps count optimizer steps taken: step losses at 1..N, epoch E's scalars
        # at E * steps_per_epoch. On resume, purge_step drops whatever a killed or interrupted
        # run logged after the checkpoint, so every step has exactly one value.
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"),
                                    purge_step=start_epoch * self.steps_per_epoch + 1 if self.resumed else None)
        if not self.resumed:
            self.save_checkpoint(0)   # a resumable point before the first step

    def checkpoint_state(self, epoch: int) -> dict:
        p = self.parts
        return {"model": p.model.state_dict(), "optimizer": p.optimizer.state_dict(),
                "scheduler": p.scheduler.state_dict() if p.scheduler is not None else None,
                "epoch": epoch, "history": self.history, "rng": rng_state(),
                "config": self.config, "config_hash": config_hash(self.config)}

    def save_checkpoint(self, epoch: int) -> None:
        save_checkpoint(self.ckpt_path, self.checkpoint_state(epoch))

    def step_done(self, epoch: int, step: int, loss: float) -> None:
        self.writer.add_scalar("train/step_loss", loss, (epoch - 1) * self.steps_per_epoch + step + 1)
        self.progress.on_step(step + 1)
        if self.is_main and time.monotonic() - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = time.monotonic()   # the whole run at a glance: epoch k/n, run ETA
            tqdm.write(self.progress.line(), file=sys.stderr)

    def lr_applied(self, epoch: int, step: int, lr: float) -> None:
        self.writer.add_scalar("train/lr", lr, (epoch - 1) * self.steps_per_epoch + step + 1)

    def epoch_done(self, row: dict) -> None:
        self.history.append(row)
        self.progress.end_epoch(row["val_accuracy"])
        step = row["epoch"] * self.steps_per_epoch
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            self.writer.add_scalar(key.replace("_", "/", 1), row[key], step)
        self.writer.add_scalar("train/images_per_second", row["images_per_s"], step)   # lr: per step, above
        self.writer.flush()
        if self.is_main:
            # The checkpoint first: history.json is never ahead of what --resume can continue from.
            self.save_checkpoint(row["epoch"])
            atomic_write_json(self.run_dir / "history.json", self.history)
            print(f"epoch {row['epoch']}/{self.cfg.recipe['epochs']}  train loss {row['train_loss']:.4f} "
                  f"acc {row['train_accuracy']:.4f}  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
                  f"  lr {row['lr']:.2e}  {row['images_per_s']:.0f} img/s  {row['seconds']:.1f}s", flush=True)

    def stopped_as_asked(self, epoch: int) -> None:
        self.writer.close()
        if self.is_main:
            message = (f"stopped after epoch {epoch} as asked; continue with: "
                       f"python -m training.train --resume --out {self.run_dir}")
            self.progress.step = self.steps_per_epoch
            self.progress.write("stopped", message, force=True)
            print(message)

    def interrupted(self, stop: StopFlag, epoch: int, signum: int | None = None):
        """Say what was kept and how to resume, then exit with the signal's shell code."""
        self.writer.close()
        message = interrupted_message(self.run_dir, epoch, at_once=bool(signum))
        self.progress.epoch, self.progress.step = epoch - 1, 0
        self.progress.write("stopped", message, force=True)
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(exit_code(stop, signum))

    def failed(self, message: str) -> None:
        self.writer.close()
        self.progress.write("failed", message, force=True)

    def close(self) -> None:
        self.writer.close()


class NullWriter:
    """TensorBoard stand-in for ranks other than 0, which write nothing."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def train_epochs(cfg: RunConfig, parts: Parts, log: RunLog, start_epoch: int, device: torch.device,
                 rank_info: distributed.DistInfo) -> dict | None:
    """The epochs still to run; returns the last evaluation, or None when --stop-after stopped them."""
    stop = StopFlag().install()
    # Under torchrun all ranks must stop at the same step, or the others wait in a collective.
    should_stop = (lambda: distributed.any_rank(stop(), device)) if rank_info.enabled else stop
    epochs = cfg.recipe["epochs"]
    last_eval, epoch = None, start_epoch
    try:
        for n, epoch in enumerate(range(start_epoch + 1, epochs + 1), start=1):
            row, last_eval = train_and_evaluate(cfg, parts, log, epoch, device, should_stop,
                                                progress=cfg.progress and rank_info.is_main)
            if row is None:
                log.interrupted(stop, epoch)
            log.epoch_done(row)
            if should_stop():
                log.interrupted(stop, epoch + 1)
            if cfg.stop_after and n >= cfg.stop_after and epoch < epochs:
                log.stopped_as_asked(epoch)
                return None
    except (NonFiniteLossError, DivergedError) as e:
        log.failed(f"{e}; the last good checkpoint is untouched")
        raise DivergedError(f"{e}; no release written; the last good checkpoint is {log.ckpt_path} "
                            f"(epoch {epoch - 1})") from e
    except StopNow as e:
        log.interrupted(stop, epoch, signum=e.signum)
    except OSError as e:   # a full disk or a vanished folder while saving the epoch
        log.failed(one_line(e))
        raise CliError(f"{one_line(e)}; stopped at epoch {epoch}; {log.ckpt_path} holds the last epoch it saved, "
                       f"resume with: python -m training.train --resume --out {cfg.out}") from e
    finally:
        stop.restore()
    if last_eval is None:   # resumed a finished run: evaluate the weights once more
        last_eval = evaluate_fp32(cfg, parts, device)
    log.close()
    return last_eval


def train_and_evaluate(cfg: RunConfig, parts: Parts, log: RunLog, epoch: int, device: torch.device,
                       should_stop, *, progress: bool) -> tuple[dict | None, dict | None]:
    """One epoch: (its history row, its evaluation), or (None, None) when a signal interrupted it."""
    parts.train_loader.set_epoch(epoch)
    lr = parts.optimizer.param_groups[0]["lr"]
    log.progress.start_epoch(epoch)
    tr = train_one_epoch(parts.step_model, parts.train_loader, parts.optimizer, parts.scheduler,
                         parts.loss_fn, cfg.spec.model, device=device, epoch=epoch,
                         autocast_dtype=parts.autocast_dtype, channels_last=parts.channels_last,
                         should_stop=should_stop, progress=progress,
                         on_step=lambda s, loss: log.step_done(epoch, s, loss),
                         on_lr=lambda s, step_lr: log.lr_applied(epoch, s, step_lr))
    if tr["interrupted"]:
        return None, None
    log.progress.write("evaluating", force=True)
    ev = evaluate_fp32(cfg, parts, device)
    check_epoch(epoch, parts.model, ev)   # before anything of this epoch is saved
    row = {"epoch": epoch, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
           "val_loss": ev["loss"], "val_accuracy": ev["accuracy"], "lr": lr,
           "seconds": tr["seconds"], "cpu_seconds": round(tr["cpu_seconds"], 2), "images_per_s": tr["images_per_s"]}
    return row, ev


def evaluate_fp32(cfg: RunConfig, parts: Parts, device: torch.device) -> dict:
    # Evaluation in float32 (no autocast), as training.evaluate and the app run the
    # released weights, so metrics.json is reproduced exactly on every device.
    return evaluate(parts.eval_model, parts.val_loader, parts.loss_fn, cfg.spec.model, device=device,
                    channels_last=parts.channels_last)


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
