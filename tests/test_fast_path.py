"""The device-resident fast path against the usual DataLoader path (training/usual.py).

Both must give the same batches' shapes, dtypes, value ranges and label alignment; the
batched augmentation must draw per sample (its own crop offset and its own Random Erasing
rectangle for every image, unlike torchvision's RandomErasing on a batch), be reproducible
from a seed, and never erase at evaluation; and a short run on the real MNIST must learn
through either path.
"""
from __future__ import annotations

import json

import pytest
import torch
from torchvision.transforms import v2

from models.augment import EvalTransform, TrainAugment, random_erasing
from tests.conftest import SHARED_DATA, requires_real_mnist, train_tiny
from training.data import DeviceLoader, load_split
from models.presets import RANDOM_ERASING_DEFAULTS
from training.tasks import get_task
from training.usual import UsualLoader, load_usual_split, per_image_transform

CPU = torch.device("cpu")


def both_splits(task, data_dir, *, train, limit=None):
    return (load_split(task, data_dir, train=train, limit=limit, seed=0),
            load_usual_split(task, data_dir, train=train, limit=limit, seed=0, workers=1))


def loaders(task, fast_split, usual_split, transform, *, batch_size, shuffle, workers=0, **kw):
    common = dict(batch_size=batch_size, transform=transform, device=CPU, shuffle=shuffle, seed=3, **kw)
    return DeviceLoader(fast_split, **common), UsualLoader(usual_split, workers=workers, **common)


def value_bounds(cfg):
    mean = torch.tensor(cfg.mean).view(1, -1, 1, 1)
    std = torch.tensor(cfg.std).view(1, -1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


def check_same_contract(task, fast_split, usual_split, *, eval_atol):
    """Batches of both paths: shapes, dtypes, ranges, labels aligned with positions, same order."""
    cfg = task.model
    assert torch.equal(fast_split.indices, usual_split.indices)
    assert torch.equal(fast_split.labels, usual_split.labels)
    lo, hi = value_bounds(cfg)
    size = cfg.input_size
    train_aug = TrainAugment.from_recipe(task.recipe["augment"], cfg)
    for transform, shuffle in ((train_aug, True), (EvalTransform.from_config(cfg), False)):
        fast, usual = loaders(task, fast_split, usual_split, transform, batch_size=16, shuffle=shuffle,
                              drop_last=shuffle)
        fast.set_epoch(2), usual.set_epoch(2)
        fast_batches, usual_batches = list(fast), list(usual)
        assert len(fast_batches) == len(usual_batches) == len(fast) == len(usual) > 1
        for (xf, yf, i_f), (xu, yu, iu) in zip(fast_batches, usual_batches):
            for x, y, i in ((xf, yf, i_f), (xu, yu, iu)):
                assert x.dtype == torch.float32 and y.dtype == torch.int64 and i.dtype == torch.int64
                assert x.shape == (y.shape[0], cfg.in_channels, size, size) and x.is_contiguous()
                assert ((x >= lo - 1e-5) & (x <= hi + 1e-5)).all()
                assert torch.equal(y, fast_split.labels[i])           # each label belongs to its image
            # The same permutation for (seed, epoch) on both paths: the same images, in the same order.
            assert torch.equal(i_f, iu) and torch.equal(yf, yu)
            if not shuffle:
                assert (xf - xu).abs().max() <= eval_atol
        if not shuffle:                                              # every validation image, once
            assert sorted(torch.cat([b[2] for b in fast_batches]).tolist()) == list(range(len(fast_split)))


def test_cifar10_fast_and_dataloader_batches_agree(cifar10_dir, cifar_unchecked):
    task = get_task("cifar10")
    for train in (True, False):
        fast, usual = both_splits(task, cifar10_dir, train=train)
        check_same_contract(task, fast, usual, eval_atol=1e-5)    # no resizing: the same pixels
    # Sharded for torchrun (2 ranks): the same shard of the same permutation on both paths.
    fast, usual = both_splits(task, cifar10_dir, train=True)
    for rank in (0, 1):
        f, u = loaders(task, fast, usual, EvalTransform.from_config(task.model), batch_size=8, shuffle=True,
                       drop_last=True, rank=rank, world_size=2)
        assert [b[2].tolist() for b in f] == [b[2].tolist() for b in u]


def test_mnist_fast_and_dataloader_batches_agree(mnist_dir):
    task = get_task("mnist")
    for train in (True, False):
        fast, usual = both_splits(task, mnist_dir, train=train, limit=96)
        # 28 -> 32: torchvision's antialiased tensor resize and PIL's resize give the same uint8 pixels.
        check_same_contract(task, fast, usual, eval_atol=1e-5)


def test_catsdogs_dataloader_path_skips_the_same_unreadable_files(catsdogs_dir):
    task = get_task("catsdogs")
    fast, usual = both_splits(task, catsdogs_dir, train=False)
    assert usual.skipped == fast.skipped == 2
    assert torch.equal(fast.indices, usual.indices) and torch.equal(fast.labels, usual.labels)
    transform = EvalTransform.from_config(task.model)
    (xf, yf, _), (xu, yu, _) = next(iter(loaders(task, fast, usual, transform, batch_size=4, shuffle=False)[0])), \
        next(iter(loaders(task, fast, usual, transform, batch_size=4, shuffle=False)[1]))
    assert xf.shape == xu.shape == (4, 3, 224, 224) and torch.equal(yf, yu)
    # ImageOps.fit (the cache) and Resize+CenterCrop differ by sub-pixel rounding only.
    assert (xf - xu).abs().mean() < 0.05


# --- per-sample augmentation ----------------------------------------------------------------

def textured_batch(n=32, c=3, size=32):
    """n copies of one image with no symmetry, so every crop offset and flip gives another result."""
    g = torch.Generator().manual_seed(0)
    img = torch.randint(1, 256, (1, c, size, size), dtype=torch.uint8, generator=g)
    return img.expand(n, -1, -1, -1).contiguous()


def test_each_image_gets_its_own_crop_offset_and_flip():
    aug = TrainAugment(crop=32, padding=4, flip=True, mean=(0.5,) * 3, std=(0.25,) * 3)
    out = aug(textured_batch(), generator=torch.Generator().manual_seed(1))
    distinct = {tuple(x.flatten().tolist()) for x in out}
    assert len(distinct) > 16        # 81 offsets x 2 flips: 32 copies of one image almost all differ


def erased_boxes(before: torch.Tensor, after: torch.Tensor) -> list[tuple | None]:
    """The bounding box (top, left, bottom, right) of the changed pixels of each image; None if none."""
    boxes = []
    for changed in (before != after).any(dim=1):            # (H, W) per image
        if not changed.any():
            boxes.append(None)
            continue
        rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert changed[top:bottom, left:right].all()         # a filled rectangle, nothing outside it
        assert changed.sum() == (bottom - top) * (right - left)
        boxes.append((top, left, bottom, right))
    return boxes


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse-fill(cpu)", "dense-fill(gpu)"])
def test_random_erasing_draws_a_rectangle_per_image_unlike_torchvision_on_a_batch(sparse):
    x = torch.ones(16, 3, 32, 32)
    # torchvision's RandomErasing treats the batch as one image: one rectangle, erased in all of them.
    theirs = erased_boxes(x, v2.RandomErasing(p=1.0, value=0)(x))
    assert len(set(theirs)) == 1 and theirs[0] is not None
    # Ours: every image its own rectangle.
    ours = erased_boxes(x, random_erasing(x, p=1.0, value=0.0, sparse=sparse,
                                          generator=torch.Generator().manual_seed(0)))
    assert all(b is not None for b in ours)
    assert len(set(ours)) == len(ours)
    # Area and aspect within the recipe's ranges, as in the paper.
    for top, left, bottom, right in ours:
        h, w = bottom - top, right - left
        assert 0.02 * 1024 * 0.8 <= h * w <= 0.4 * 1024 * 1.2
        assert 0.3 * 0.7 <= h / w <= 3.3 * 1.4
    # p is a per-image probability: about half the images of a large batch are erased.
    half = erased_boxes(torch.ones(400, 1, 32, 32),
                        random_erasing(torch.ones(400, 1, 32, 32), p=0.5, value=0.0, sparse=sparse,
                                       generator=torch.Generator().manual_seed(1)))
    assert 140 < sum(b is not None for b in half) < 260
    # value="random": standard-normal noise inside the rectangles, the rest untouched.
    noisy = random_erasing(torch.zeros(64, 3, 32, 32), p=1.0, sparse=sparse,
                           generator=torch.Generator().manual_seed(2))
    inside = noisy[noisy != 0]
    assert inside.numel() > 64 * 3 * 20 and abs(float(inside.mean())) < 0.05 and abs(float(inside.std()) - 1) < 0.05


def test_augmentation_is_reproducible_with_a_seed():
    aug = TrainAugment(crop=32, padding=4, flip=True, random_erasing=dict(RANDOM_ERASING_DEFAULTS),
                       mean=(0.5,) * 3, std=(0.25,) * 3)
    batch = textured_batch()
    run = lambda seed: aug(batch, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))
    # The loader: the same (seed, epoch) gives the same batches; another epoch other batches.
    split = load_split_like(batch)
    def epoch_batches(seed, epoch):
        loader = DeviceLoader(split, batch_size=8, transform=aug, device=CPU, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return [(x, i) for x, _, i in loader]
    a, b, c = epoch_batches(0, 1), epoch_batches(0, 1), epoch_batches(0, 2)
    assert all(torch.equal(xa, xb) and torch.equal(ia, ib) for (xa, ia), (xb, ib) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def load_split_like(images):
    from training.data import Split
    n = images.shape[0]
    return Split("train", images, torch.arange(n) % 10, torch.arange(n))


def test_random_erasing_is_off_at_evaluation():
    cfg = get_task("catsdogs").model
    recipe = get_task("catsdogs").resolved_recipe(random_erasing=True)
    train_aug = TrainAugment.from_recipe(recipe["augment"], cfg)
    assert train_aug.random_erasing == RANDOM_ERASING_DEFAULTS
    ev = EvalTransform.from_config(cfg)
    batch = textured_batch(n=4, size=256)
    # Generators are ignored: evaluation is deterministic and never erases.
    a = ev(batch, generator=torch.Generator().manual_seed(0), erase_generator=torch.Generator().manual_seed(0))
    b = ev(batch, generator=torch.Generator().manual_seed(1), erase_generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    lo, hi = value_bounds(cfg)
    assert ((a >= lo - 1e-5) & (a <= hi + 1e-5)).all()     # no noise-filled rectangle
    # The DataLoader path: RandomErasing is the last training step, after Normalize; never in evaluation.
    train_steps = [type(t) for t in per_image_transform(train_aug).transforms]
    assert train_steps[-2:] == [v2.Normalize, v2.RandomErasing]
    assert v2.RandomErasing not in [type(t) for t in per_image_transform(ev).transforms]


def test_random_erasing_run_sees_the_baseline_validation_batches(tmp_path, catsdogs_dir, monkeypatch):
    """Two real runs (baseline and --random-erasing) with the same seed: identical validation
    batches, and training batches that differ only inside each image's erased rectangle."""
    import training.train as train_mod
    seen: dict[str, dict[str, list]] = {}
    real_train, real_eval = train_mod.train_one_epoch, train_mod.evaluate
    current = {}

    def recording_train(model, loader, *args, **kwargs):
        batches = list(loader)
        seen[current["name"]]["train"] += [(x.clone(), y.clone(), i.clone()) for x, y, i in batches]
        return real_train(model, batches, *args, **kwargs)

    def recording_eval(model, loader, *args, **kwargs):
        batches = list(loader)
        seen[current["name"]]["val"] += [(x.clone(), y.clone(), i.clone()) for x, y, i in batches]
        return real_eval(model, batches, *args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", recording_train)
    monkeypatch.setattr(train_mod, "evaluate", recording_eval)
    for name, extra in (("base", ()), ("re", ("--random-erasing",))):
        current["name"] = name
        seen[name] = {"train": [], "val": []}
        train_tiny(tmp_path / name, "catsdogs", catsdogs_dir, *extra, limit_train=8, limit_val=4, batch_size=4)
    base, re = seen["base"], seen["re"]
    assert len(base["val"]) == len(re["val"]) > 0
    for (xb, yb, ib), (xr, yr, ir) in zip(base["val"], re["val"]):
        assert torch.equal(xb, xr) and torch.equal(yb, yr) and torch.equal(ib, ir)
    erased = 0
    for (xb, yb, ib), (xr, yr, ir) in zip(base["train"], re["train"]):
        assert torch.equal(ib, ir) and torch.equal(yb, yr)
        boxes = erased_boxes(xb, xr)        # asserts that each difference is one filled rectangle
        erased += sum(b is not None for b in boxes)
    assert erased > 0
    configs = [json.loads((tmp_path / n / "config.json").read_text()) for n in ("base", "re")]
    assert configs[0]["init_sha256"] == configs[1]["init_sha256"]


# --- a short real run through each path --------------------------------------------------------

@requires_real_mnist
@pytest.mark.parametrize("loader", ["device", "dataloader"])
def test_short_mnist_run_learns_through_either_path(tmp_path, loader):
    # 64 steps of 16 images. Measured on the 2-core CPU: 0.51 (device) and 0.55 (dataloader)
    # validation accuracy; at the recipe's peak lr (1e-3) VGG19-BN needs more steps before its
    # BatchNorm running statistics settle (0.35 after the same 64 steps). Chance is 0.1.
    run = train_tiny(tmp_path / loader, "mnist", SHARED_DATA, "--loader", loader, "--workers", "1", "--lr", "3e-4",
                     epochs=1, limit_train=1024, limit_val=256, batch_size=16)
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert config["data_loader"] == loader and config["dataset"]["train_images"] == 1024
    assert metrics["num_images"] == 256
    assert metrics["accuracy"] > 0.3, metrics["accuracy"]
