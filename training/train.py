"""Train one task end to end and write its run directory (docs/run-directory.md).

    python -m training.train --task cifar10
    python -m training.train --task mnist
    python -m training.train --task catsdogs [--random-erasing]
    python -m training.train --resume --out runs/mnist/20261129-170000

After torchvision's classification reference: `main` turns the flags into a frozen RunConfig
(training/run_config.py) and `run(cfg)` is the recipe of a run, read top to bottom; the
parts live beside it (engine: train_one_epoch / evaluate; optim; precision; signals;
runlog: what it writes while training, progress.json included; midepoch: checkpoints within an epoch and resuming
at their step; record: what the run measured; release: the files it leaves). `training.compare`, the
benchmarks and the app call `run(cfg)` directly.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.augment import EvalTransform, TrainAugment
from models.registry import create_model
from training import distributed
from training.checkpoint import CheckpointError, load_checkpoint, set_rng_state, state_sha256
from training.cli import CliError, check_writable_folder, one_line, run_cli, run_folder_lock
from training.data import Batches, DatasetError, Split, load_split
from training.divergence import DivergedError, check_epoch
from training.engine import EpochTally, NonFiniteLossError, evaluate, make_loss, train_one_epoch
from training.midepoch import PartialEpoch, Position, StepCheckpoints, resume_partial
from training.optim import build_optimizer, build_scheduler
from training.precision import resolve_precision, set_torch_flags, use_channels_last
from training.record import config_json, distributed_facts, now_utc
from training.release import save_examples, write_release
from training.run_config import RunConfig, get_args_parser, options, resolve
from training.runlog import RunLog
from training.signals import StopFlag, StopNow

__all__ = ["get_args_parser", "main", "options", "resolve", "run", "RunConfig"]


def main(args) -> Path:
    """The command line: resolve the flags once, set the process-wide torch flags, train."""
    cfg = resolve(args)
    set_torch_flags(torch.device(cfg.device), deterministic=cfg.deterministic)
    return run(cfg)


def run(cfg: RunConfig) -> Path:
    """Train (or continue) the run `cfg` describes; returns its run directory."""
    rank_info, device = distributed.setup(torch.device(cfg.device), cfg.dist_timeout_s)
    try:
        # One run directory for all ranks (a default --out is a timestamp, rank 0's wins).
        cfg = dataclasses.replace(cfg, out=Path(distributed.broadcast_object(str(cfg.out))))
        if rank_info.is_main:
            check_writable_folder(cfg.out, "--out")   # before any data is read or downloaded; creates nothing
        distributed.barrier()  # every rank has checked the run directory before rank 0 writes to it
        with run_folder_lock(cfg.out) if rank_info.is_main else contextlib.nullcontext():
            return _run(cfg, device, rank_info)
    finally:
        distributed.cleanup()


def _run(cfg: RunConfig, device: torch.device, rank_info: distributed.DistInfo) -> Path:
    run_dir, labels = cfg.out, cfg.source.labels
    train_split, val_split = load_data(cfg)
    torch.manual_seed(cfg.seed)  # initial weights depend on the seed only, not on the variant
    model = create_model(cfg.model)
    if cfg.recipe.get("pretrained"):
        load_pretrained_backbone(model, cfg.recipe["pretrained"])
    init_sha256 = state_sha256(model.state_dict())   # names, dtypes, shapes and bytes of every tensor
    parts = build_parts(cfg, model, device, rank_info, train_split, val_split)
    checkpoint = load_checkpoint(cfg.resume_from) if cfg.resume_from is not None else None
    history, start, partial = restore(cfg, parts, checkpoint, device, rank_info)
    created = checkpoint["config"].get("created") if checkpoint else now_utc()
    config = config_json(cfg, train_split, val_split, parameters=sum(p.numel() for p in model.parameters()),
                         init_sha256=checkpoint["config"]["init_sha256"] if checkpoint else init_sha256,
                         device=device, world_size=rank_info.world_size, created=created)
    log = RunLog(cfg, config, parts, history, rank_info, resumed=checkpoint is not None)
    if rank_info.is_main:
        save_examples(run_dir, val_split, labels, per_class=1 if len(labels) > 2 else 4)
    log.open(start)
    last_eval = train_epochs(cfg, parts, log, start, partial, device, rank_info)
    if last_eval is None:   # stopped early as asked (--stop-after)
        return run_dir
    if rank_info.is_main:
        log.write_progress("evaluating", force=True)
        write_release(run_dir, model, log.config, history, last_eval, val_split)
        log.finished(last_eval)
    distributed.barrier()
    return run_dir


def load_data(cfg: RunConfig) -> tuple[Split, Split]:
    """The training and validation splits (uint8 tensors, or image files decoded while training)."""
    return (load_split(cfg.spec, cfg.source, cfg.data_dir, train=True, limit=cfg.limit_train, seed=cfg.seed),
            load_split(cfg.spec, cfg.source, cfg.data_dir, train=False, limit=cfg.limit_val, seed=cfg.seed))


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
    recipe, model_cfg = cfg.recipe, cfg.model
    model.to(device)
    amp = resolve_precision(cfg.precision, device)   # cfg.precision is resolved: fp32 or bf16
    channels_last = use_channels_last(device, amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    shard = {"rank": rank_info.rank, "world_size": rank_info.world_size, "workers": cfg.workers}
    batch_size = recipe["batch_size"]
    train_loader = Batches(train_split, batch_size=batch_size, device=device, shuffle=True, drop_last=True,
                           seed=cfg.seed, transform=TrainAugment.from_recipe(recipe["augment"], model_cfg), **shard)
    val_loader = Batches(val_split, batch_size=max(batch_size, 256), device=device, shuffle=False,
                         transform=EvalTransform.from_config(model_cfg), **shard)
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
                 scheduler=scheduler, loss_fn=make_loss(recipe["loss"], model_cfg), train_loader=train_loader,
                 val_loader=val_loader, autocast_dtype=amp, channels_last=channels_last)


def wrap_distributed(cfg: RunConfig, model: nn.Module, device: torch.device,
                     rank_info: distributed.DistInfo) -> tuple[nn.Module, nn.Module]:
    """(model, what trains): under torchrun, DistributedDataParallel (with SyncBatchNorm if asked)."""
    if not rank_info.enabled:
        return model, model
    if cfg.sync_bn:
        if device.type != "cuda":
            raise SystemExit("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    if rank_info.is_main:
        facts = distributed_facts(cfg, rank_info.world_size)
        print(f"distributed: {facts['world_size']} ranks x {facts['per_rank_batch_size']} images = "
              f"{facts['effective_batch_size']} per step, lr {facts['effective_lr']:g} "
              f"({cfg.lr_scaling} scaling)")
    return model, train_model


def restore(cfg: RunConfig, parts: Parts, checkpoint: dict | None, device: torch.device,
            rank_info: distributed.DistInfo) -> tuple[list[dict], Position, PartialEpoch | None]:
    """(history, where training continues, the epoch it stopped within): from the checkpoint on
    resume, ([], the start, None) for a new run."""
    if checkpoint is None:
        return [], Position(0), None
    partial = resume_partial(checkpoint, device=device, rank=rank_info.rank, world_size=rank_info.world_size,
                             path=cfg.resume_from)
    parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    if parts.scheduler is not None and checkpoint.get("scheduler"):
        parts.scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    start = Position(int(checkpoint["epoch"]), partial.step if partial is not None else 0)
    return list(checkpoint["history"]), start, partial


def train_epochs(cfg: RunConfig, parts: Parts, log: RunLog, start: Position, partial: PartialEpoch | None,
                 device: torch.device, rank_info: distributed.DistInfo) -> dict | None:
    """The epochs still to run; returns the last evaluation, or None when --stop-after stopped them."""
    stop = StopFlag().install()
    # Under torchrun all ranks must stop (and checkpoint) at the same step, or the others wait in a collective.
    checkpoints = StepCheckpoints(log, stop, parts.train_loader, world_size=rank_info.world_size, device=device)
    epochs = cfg.recipe["epochs"]
    last_eval, epoch = None, start.epoch
    try:
        for n, epoch in enumerate(range(start.epoch + 1, epochs + 1), start=1):
            row, last_eval = train_and_evaluate(cfg, parts, log, epoch, device, checkpoints,
                                                partial if epoch == start.epoch + 1 else None,
                                                progress=cfg.progress and rank_info.is_main)
            if row is None:
                log.interrupted(stop)
            log.epoch_done(row)
            if checkpoints.stop_requested():
                log.interrupted(stop)
            if cfg.stop_after and n >= cfg.stop_after and epoch < epochs:
                log.stopped_as_asked(epoch)
                return None
    except (NonFiniteLossError, DivergedError) as e:
        log.failed(f"{e}; the last good checkpoint is untouched")
        raise DivergedError(f"{e}; no release written; the last good checkpoint is {log.ckpt_path}, "
                            f"saved at {log.kept()}") from e
    except StopNow as e:
        log.interrupted(stop, signum=e.signum)
    except OSError as e:   # a full disk or a vanished folder while saving a checkpoint
        log.failed(one_line(e))
        raise CliError(f"{one_line(e)}; stopped during epoch {epoch}; {log.ckpt_path} holds {log.kept()}, "
                       f"resume with: python -m training.train --resume --out {cfg.out}") from e
    finally:
        stop.restore()
    if last_eval is None:   # resumed a finished run: evaluate the weights once more
        last_eval = evaluate_fp32(cfg, parts, device)
    log.close()
    return last_eval


def train_and_evaluate(cfg: RunConfig, parts: Parts, log: RunLog, epoch: int, device: torch.device,
                       checkpoints: StepCheckpoints, partial: PartialEpoch | None,
                       *, progress: bool) -> tuple[dict | None, dict | None]:
    """One epoch (the rest of it after `partial`): (its history row, its evaluation), or
    (None, None) when a signal stopped it (at a step, where a checkpoint was saved)."""
    parts.train_loader.set_epoch(epoch)
    if partial is not None:
        parts.train_loader.resume_at(partial.loader)
        tally, lr, start_step = partial.tally, partial.lr, partial.step
    else:
        tally, lr, start_step = EpochTally.zero(device), parts.optimizer.param_groups[0]["lr"], 0
    checkpoints.begin_epoch(epoch, tally, lr)
    log.start_epoch(epoch, start_step)
    tr = train_one_epoch(parts.step_model, parts.train_loader, parts.optimizer, parts.scheduler,
                         parts.loss_fn, cfg.model, device=device, epoch=epoch, epochs=cfg.recipe["epochs"],
                         autocast_dtype=parts.autocast_dtype, channels_last=parts.channels_last,
                         at_sync=checkpoints, progress=progress, tally=tally, start_step=start_step,
                         on_step=log.step_done)
    if tr["interrupted"]:
        return None, None
    log.evaluating(epoch)
    ev = evaluate_fp32(cfg, parts, device)
    check_epoch(epoch, parts.model, ev)   # before anything of this epoch is saved
    row = {"epoch": epoch, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
           "val_loss": ev["loss"], "val_accuracy": ev["accuracy"], "lr": lr,
           "seconds": tr["seconds"], "cpu_seconds": round(tr["cpu_seconds"], 2), "images_per_s": tr["images_per_s"]}
    return row, ev


def evaluate_fp32(cfg: RunConfig, parts: Parts, device: torch.device) -> dict:
    # Evaluation in float32 (no autocast), as training.evaluate and the app run the
    # released weights, so metrics.json is reproduced exactly on every device.
    return evaluate(parts.eval_model, parts.val_loader, parts.loss_fn, cfg.model, device=device,
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
    from models.artifact import ArtifactError
    sys.exit(run_cli(main, get_args_parser(),
                     errors=(CheckpointError, DatasetError, DivergedError, ArtifactError)))
