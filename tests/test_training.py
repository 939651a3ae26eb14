"""End-to-end tiny runs of all three tasks through the real CLI, and the run directory contract."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from models.artifact import load_model
from tests.conftest import REPO, train_tiny

RUN_FILES = {"config.json", "model.safetensors", "history.json", "metrics.json", "predictions.json",
             "README.md", "curves.png", "examples", "tb", "checkpoint.pt", "SHA256SUMS",
             "progress.json", "see_why"}


def check_run_directory(run_dir, *, task, epochs, val_images, train_images, listed_val=None):
    """`val_images`: the validation images evaluated; `listed_val`: the files listed (default the same;
    an image file that cannot be decoded is listed but not evaluated)."""
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    config = json.loads((run_dir / "config.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert config["task"] == task
    assert config["dataset"]["val_images"] == (listed_val or val_images)
    assert config["dataset"]["train_images"] == train_images
    assert config["recipe"]["epochs"] == epochs and len(history) == epochs
    assert len(config["init_sha256"]) == 64
    assert set(config["versions"]) >= {"python", "torch", "torchvision"}
    # The machine the timings come from, as /proc/cpuinfo and the scheduler name it.
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")]
    hw = config["hardware"]
    if names:
        assert hw["cpu"] == names[0]
    assert hw["cpu_cores"] == len(os.sched_getaffinity(0)) and hw["gpu"] is None
    flags = set(re.findall(r"\b(amx_tile|avx512_bf16)\b", cpuinfo))
    assert hw["bf16_instructions"] == ("amx" if "amx_tile" in flags else "avx512_bf16" if flags else None)
    for row in history:
        assert set(row) >= {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
        assert all(math.isfinite(row[k]) for k in row)
        correct = row["val_accuracy"] * val_images           # a whole number of the val images
        assert abs(correct - round(correct)) < 1e-9 and 0 <= round(correct) <= val_images
    # The reported accuracy is the final epoch's, and is what the stored predictions say.
    predictions = json.loads((run_dir / "predictions.json").read_text())
    right = sum(p == t for p, t in zip(predictions["predicted"], predictions["labels"]))
    assert metrics["accuracy"] == history[-1]["val_accuracy"] == pytest.approx(right / val_images, abs=1e-12)
    assert metrics["num_images"] == val_images == len(predictions["labels"])
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == val_images and sum(matrix[i][i] for i in range(len(matrix))) == right
    assert set(metrics["per_class_accuracy"]) == set(config["labels"])
    weights = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    with Image.open(run_dir / "curves.png") as img:
        assert img.size[0] > 400
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    index = json.loads((run_dir / "examples" / "index.json").read_text())
    assert all((run_dir / "examples" / e["file"]).is_file() for e in index)
    return config, history, metrics, index


def test_mnist_run_directory(mnist_run):
    config, history, metrics, index = check_run_directory(mnist_run, task="mnist", epochs=2, val_images=32,
                                                          train_images=64)
    assert config["in_channels"] == 1 and config["input_size"] == 32
    assert config["recipe"]["optimizer"]["name"] == "adam"
    assert config["recipe"]["loss"]["name"] == "cross_entropy"


def test_cifar10_run_directory_and_ten_examples(cifar10_run):
    config, history, metrics, index = check_run_directory(cifar10_run, task="cifar10", epochs=1, val_images=40,
                                                          train_images=40)
    # The app's ten test images: one per class, taken from the validation split.
    assert sorted(e["label"] for e in index) == sorted(config["labels"])
    assert len(index) == 10
    with Image.open(cifar10_run / "examples" / index[0]["file"]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    opt = config["recipe"]["optimizer"]
    assert opt["name"] == "sgd" and opt["nesterov"] and opt["weight_decay"] > 0


def test_catsdogs_skips_corrupt_images_and_counts_them(catsdogs_run):
    config, *_ = check_run_directory(catsdogs_run, task="catsdogs", epochs=1, val_images=7, train_images=16,
                                     listed_val=8)
    # 8 val files picked from 10 (one truncated JPEG among them): 7 evaluated; notes.txt is not an image.
    assert config["dataset"]["skipped_unreadable"] == 2
    assert config["labels"] == ["cat", "dog"] and (config["architecture"], config["num_classes"]) == ("resnet50", 1)
    assert config["recipe"]["loss"] == {"name": "bce_with_logits"}
    # train/{cat,dog} and val/{Cat,Dog} is the user's own image folder, and the run says so.
    assert config["dataset"]["name"] == "a local image folder" and config["dataset"]["hub_id"] is None
    assert config["dataset"]["class_counts"]["val"] == {"cat": 4, "dog": 4}


def test_random_erasing_run_starts_from_the_same_weights_and_differs_only_in_augmentation(
        catsdogs_run, catsdogs_re_run):
    base = json.loads((catsdogs_run / "config.json").read_text())
    re = json.loads((catsdogs_re_run / "config.json").read_text())
    assert base["init_sha256"] == re["init_sha256"]
    assert base["variant"] == "baseline" and re["variant"] == "random-erasing"
    assert base["recipe"]["augment"]["random_erasing"] is None
    assert re["recipe"]["augment"]["random_erasing"] == {"p": 0.5, "scale": [0.02, 0.4], "ratio": [0.3, 3.3],
                                                          "value": "random"}
    differing = {k for k in base["recipe"] if base["recipe"][k] != re["recipe"][k]}
    assert differing == {"augment"}
    # Random Erasing never touches validation: same images, same labels evaluated.
    pb = json.loads((catsdogs_run / "predictions.json").read_text())
    pr = json.loads((catsdogs_re_run / "predictions.json").read_text())
    assert pb["indices"] == pr["indices"] and pb["labels"] == pr["labels"]


def test_evaluate_reproduces_metrics_exactly(mnist_run, mnist_dir, tmp_path):
    from training.evaluate import get_args_parser, main
    out = tmp_path / "m.json"
    metrics = main(get_args_parser().parse_args([str(mnist_run), "--data-dir", str(mnist_dir),
                                                 "--device", "cpu", "--out", str(out)]))
    stored = json.loads((mnist_run / "metrics.json").read_text())
    for key in ("accuracy", "num_images", "per_class_accuracy", "confusion_matrix", "split"):
        assert metrics[key] == stored[key]
    assert json.loads(out.read_text())["accuracy"] == stored["accuracy"]


def test_loaded_release_predicts_what_training_evaluated(mnist_run, mnist_dir):
    loaded = load_model(mnist_run)
    preds = json.loads((mnist_run / "predictions.json").read_text())
    from training.data import find_source, load_split
    from models.tasks import TASKS
    from models.augment import EvalTransform
    val = load_split(TASKS["mnist"], find_source(TASKS["mnist"], mnist_dir), mnist_dir, train=False, limit=32, seed=0)
    with torch.no_grad():
        probs = torch.softmax(loaded.model(EvalTransform.from_config(loaded.config)(val.images)), 1)
    assert val.indices.tolist() == preds["indices"]
    assert probs.argmax(1).tolist() == preds["predicted"]


def test_same_seed_same_weights_different_seed_different_weights(tmp_path, cifar10_dir, cifar_unchecked):
    from safetensors.torch import load_file
    tiny = dict(limit_train=20, limit_val=10, batch_size=10, epochs=1)
    a = train_tiny(tmp_path / "a", "cifar10", cifar10_dir, "--deterministic", **tiny)
    again = train_tiny(tmp_path / "again", "cifar10", cifar10_dir, "--deterministic", **tiny)
    b = train_tiny(tmp_path / "b", "cifar10", cifar10_dir, "--deterministic", "--seed", "1", **tiny)
    ca, c_again, cb = (json.loads((r / "config.json").read_text()) for r in (a, again, b))
    # Same seed: the same initial weights, and the same trained weights bit for bit.
    assert ca["init_sha256"] == c_again["init_sha256"]
    wa, w_again, wb = (load_file(str(r / "model.safetensors")) for r in (a, again, b))
    assert wa.keys() == w_again.keys() and all(torch.equal(wa[k], w_again[k]) for k in wa)
    # Another seed: other initial weights, other trained weights.
    assert ca["init_sha256"] != cb["init_sha256"]
    assert not torch.equal(wa["features.0.weight"], wb["features.0.weight"])
    assert ca["dataset"]["train_images"] == 20


def test_refuses_to_overwrite_an_existing_run(cifar10_run, cifar10_dir, cifar_unchecked):
    with pytest.raises(SystemExit, match="--resume"):
        train_tiny(cifar10_run, "cifar10", cifar10_dir)


def parser_flags() -> list[str]:
    """Every flag of `python -m training.train`, read from its parser, in --help order."""
    from training.train import get_args_parser
    return [a.option_strings[0] for a in get_args_parser()._actions if a.option_strings and a.dest != "help"]


def test_help_lists_every_flag_once_with_its_default_said_once():
    out = subprocess.run([sys.executable, "-m", "training.train", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    listed = re.findall(r"^\s{2}(--[a-z-]+)", out, flags=re.M)
    assert listed == parser_flags() and len(listed) >= 24
    for block in re.split(r"\n  (?=--)", out)[1:]:
        text = " ".join(block.split())
        assert text.count("default") <= 1, text          # was "(default: the task's recipe, 40) (default: None)"
    text = " ".join(out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 5.0)" in text and "(default: 600)" in text and "(default: auto)" in text


def _recipe_lr(cfg) -> float:
    return cfg.recipe["optimizer"]["lr"]


# flag -> (what follows it on the command line, what it must change in the resolved RunConfig).
# The values differ from the defaults, so each check fails if the flag were ignored.
FLAG_EFFECTS = {
    "--task": (["cifar10"], lambda cfg: cfg.task == "cifar10"),
    "--random-erasing": ([], lambda cfg: cfg.variant.value == "random-erasing"
                         and cfg.recipe["augment"]["random_erasing"]["p"] == 0.5),
    "--preset": (["quick"], lambda cfg: cfg.preset == "quick"),
    "--epochs": (["3"], lambda cfg: cfg.recipe["epochs"] == 3),
    "--batch-size": (["48"], lambda cfg: cfg.recipe["batch_size"] == 48),
    "--lr": (["0.0123"], lambda cfg: _recipe_lr(cfg) == 0.0123),
    "--data-dir": (["elsewhere"], lambda cfg: cfg.data_dir == Path("elsewhere")),
    "--out": (["OUT"], None),                              # checked by every case: cfg.out is the folder given
    "--seed": (["7"], lambda cfg: cfg.seed == 7),
    "--device": (["cpu"], lambda cfg: cfg.device == "cpu"),
    "--resume": ([], lambda cfg: cfg.resume_from.name == "checkpoint.pt" and cfg.task == "mnist"),
    "--limit-train": (["8"], lambda cfg: cfg.limit_train == 8),
    "--limit-val": (["4"], lambda cfg: cfg.limit_val == 4),
    "--workers": (["7"], lambda cfg: cfg.workers == 7),
    "--arch": (["vgg19_bn_32"], lambda cfg: cfg.spec.architecture == "vgg19_bn_32" and cfg.model.input_size == 32),
    "--pretrained": (["IMAGENET1K_V1"], lambda cfg: cfg.recipe.get("pretrained") == "IMAGENET1K_V1"),
    "--compile": ([], lambda cfg: cfg.compile is True),
    "--precision": (["bf16"], lambda cfg: cfg.precision == "bf16"),
    "--deterministic": ([], lambda cfg: cfg.deterministic is True),
    "--stop-after": (["2"], lambda cfg: cfg.stop_after == 2),
    "--checkpoint-every": (["1.5"], lambda cfg: cfg.checkpoint_every_s == 90),
    "--no-progress": ([], lambda cfg: cfg.progress is False),
    "--sync-bn": ([], lambda cfg: cfg.sync_bn is True),
    "--lr-scaling": (["linear"], lambda cfg: cfg.lr_scaling == "linear"),
    "--dist-timeout": (["30"], lambda cfg: cfg.dist_timeout_s == 30),
}


def test_every_flag_of_the_parser_is_tested_here():
    """A flag added to the parser fails here until FLAG_EFFECTS says what it must change."""
    assert sorted(parser_flags()) == sorted(FLAG_EFFECTS)


# What the flag gives may also be this machine's default (a CPU-only machine: --device cpu, and
# --precision bf16 on a CPU with AMX): for these the run without the flag is not compared.
MACHINE_DEFAULTS = {"--device", "--precision"}


@pytest.mark.parametrize("flag", sorted(FLAG_EFFECTS))
def test_each_flag_reaches_the_run_config(flag, mnist_run, catsdogs_dir, tmp_path):
    from training.run_config import get_args_parser, resolve
    values, effect = FLAG_EFFECTS[flag]
    out = tmp_path / "run"
    if flag == "--resume":                                      # the tiny run's own checkpoint
        argv, base = ["--resume", "--out", str(mnist_run)], None
        out = mnist_run
    elif flag in ("--task", "--out"):
        argv, base = ["--task", "cifar10", "--out", str(out)], None
    elif flag == "--arch":                                      # an architecture the folder task offers
        base = ["--task", "folder", "--data-dir", str(catsdogs_dir), "--out", str(out)]
        argv = base + [flag, *values]
    else:
        base = ["--task", "catsdogs", "--out", str(out)]
        argv = base + [flag, *values]
    cfg = resolve(get_args_parser().parse_args(argv))
    assert cfg.out == out
    if effect is not None:
        assert effect(cfg), (flag, cfg)
    if base is not None and flag not in MACHINE_DEFAULTS:
        assert not effect(resolve(get_args_parser().parse_args(base))), f"{flag}: same config without the flag"


def test_bf16_training_on_cpu_records_its_precision_and_evaluation_stays_exact(tmp_path, cifar10_dir, cifar_unchecked):
    from training.evaluate import get_args_parser, main
    run = train_tiny(tmp_path / "bf16", "cifar10", cifar10_dir, "--precision", "bf16", limit_train=20, limit_val=10,
                     batch_size=10)
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == "bf16"
    metrics = main(get_args_parser().parse_args([str(run), "--data-dir", str(cifar10_dir), "--device", "cpu"]))
    stored = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == stored["accuracy"] and metrics["confusion_matrix"] == stored["confusion_matrix"]


def test_default_precision_on_cpu_is_bf16_only_with_bf16_instructions(cifar10_run):
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's features from")
    flags = set(re.findall(r"\b(amx_\w+|avx512_bf16)\b", cpuinfo.read_text()))   # the kernel's words, not torch's
    expected = "bf16" if {"amx_tile", "amx_bf16"} <= flags or "avx512_bf16" in flags else "fp32"
    assert json.loads((cifar10_run / "config.json").read_text())["precision"] == expected


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                                        (False, False, None)])
def test_auto_precision_on_cpu_follows_bf16_instructions(monkeypatch, amx, avx512_bf16, expected):
    """Intel AMX and AMD Zen 4's AVX512-BF16 compute bf16 in hardware (bf16 by default); a CPU with
    neither (an older EPYC: bf16 measured 14.6x slower) trains in fp32."""
    from training.precision import resolve_precision
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) is expected
    assert resolve_precision("fp32", cpu) is None and resolve_precision("bf16", cpu) is torch.bfloat16


def test_auto_precision_on_resume_keeps_the_runs_own_and_says_when_the_device_cannot():
    from training.precision import run_precision
    cpu = torch.device("cpu")
    assert run_precision("auto", None, cpu) == "auto"            # a new run
    assert run_precision("auto", "fp32", cpu) == "fp32" and run_precision("auto", "bf16", cpu) == "bf16"
    assert run_precision("fp32", "bf16", cpu) == "fp32"          # an explicit flag wins
    with pytest.raises(SystemExit, match="trained in bf16, which meta does not support.*--precision fp32"):
        run_precision("auto", "bf16", torch.device("meta"))
