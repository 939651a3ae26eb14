"""The libraries a pushed card claims, each run where only that library is installed (issue 22 §3).

A ResNet50 repo (cats vs dogs, or the folder task on the user's own images) declares
`library_name: timm`: `timm.create_model("hf-hub:user/repo", pretrained=True)` must build it from
the repo's config.json and load its weights, give the logits of the app's model, and timm's
`resolve_data_config` must give the preprocessing the model was evaluated with. The card's timm
snippet must run as written. Each runs in a fresh virtual environment whose imports are limited
to timm and its dependencies (tests/test_hub.py `user_python`), against a Hub cache holding
exactly what the push uploads, offline. A VGG19-BN repo declares no library (tests/test_cards.py):
timm has no VGG19-BN for 32x32 input.
"""
from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from models.artifact import load_model
from models.predict import predict_probs, prepare
from tests.test_hub import REPO_ID, pushed_repo, python_blocks, user_python

TIMM_LOAD = '''
import json, sys, timm, torch
model = timm.create_model(sys.argv[1], pretrained=True).eval()
config = timm.data.resolve_data_config({}, model=model)
with torch.inference_mode():
    torch.save(model(torch.load(sys.argv[2])), sys.argv[3])
print(json.dumps({key: list(v) if isinstance(v, tuple) else v for key, v in config.items()}))
'''


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """`--task folder` on three class folders without train/ and val/: a seeded split, three classes."""
    data = tmp_path_factory.mktemp("fruit")
    rng = np.random.default_rng(1)
    for k, label in enumerate(("apple", "pear", "plum")):
        (data / label).mkdir()
        for i in range(6):
            arr = rng.integers(0, 90, size=(96, 120, 3), dtype=np.uint8)
            arr[20:76, 30:90, k] = 220
            Image.fromarray(arr).save(data / label / f"{i}.jpg", quality=90)
    from training.train import get_args_parser, main
    out = tmp_path_factory.mktemp("runs") / "folder" / "tiny"
    return main(get_args_parser().parse_args([
        "--task", "folder", "--data-dir", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "8",
        "--device", "cpu", "--no-progress", "--workers", "0"]))


@pytest.fixture(params=["catsdogs_run", "folder_run"])
def resnet_run(request) -> Path:
    return request.getfixturevalue(request.param)


def test_timm_builds_a_resnet50_repo_with_the_apps_logits_and_preprocessing(resnet_run, tmp_path):
    repo, hf_home = pushed_repo(resnet_run, tmp_path)
    assert ModelCard.load(repo / "README.md").data.library_name == "timm"
    loaded = load_model(resnet_run)
    examples = sorted((resnet_run / "examples").glob("*.png"))
    torch.manual_seed(0)
    x = torch.cat([prepare(p, loaded.config)[0] for p in examples] + [torch.randn(2, 3, 224, 224)])
    torch.save(x, tmp_path / "x.pt")
    python, env, elsewhere = user_python(tmp_path, ["timm"], hf_home)
    result = subprocess.run([python, "-c", TIMM_LOAD, f"hf-hub:{REPO_ID}", str(tmp_path / "x.pt"),
                             str(tmp_path / "logits.pt")], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with torch.inference_mode():
        expected = loaded.model(x)
    logits = torch.load(tmp_path / "logits.pt")
    assert logits.shape == expected.shape == (len(x), loaded.config.num_outputs)
    assert torch.allclose(logits, expected, rtol=0, atol=1e-5), (logits - expected).abs().max()
    data = json.loads(result.stdout.strip().splitlines()[-1])
    cfg = loaded.config
    assert data["input_size"] == [3, cfg.input_size, cfg.input_size]
    assert data["mean"] == pytest.approx(cfg.mean) and data["std"] == pytest.approx(cfg.std)
    assert data["crop_pct"] == pytest.approx(cfg.input_size / cfg.stored_size)      # 224 of 256
    assert data["crop_mode"] == "center" and data["interpolation"] == "bilinear"


def test_the_cards_timm_snippet_runs_with_timm_alone(resnet_run, tmp_path):
    """The second snippet of the pushed card, verbatim: one logit through a sigmoid for two classes,
    a softmax for more, close to the app's answer on a repo example (timm resizes with Pillow; the
    examples are stored at the resize size, so here the two preparations meet)."""
    repo, hf_home = pushed_repo(resnet_run, tmp_path)
    cnn_studio_snippet, timm_snippet = python_blocks((repo / "README.md").read_text())
    assert "timm.create_model" not in cnn_studio_snippet
    binary = len(load_model(resnet_run).config.labels) == 2
    assert ("torch.sigmoid" in timm_snippet) is binary and ("torch.softmax" in timm_snippet) is not binary
    python, env, elsewhere = user_python(tmp_path, ["timm"], hf_home)
    result = subprocess.run([python, "-c", timm_snippet], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    probs = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    loaded = load_model(resnet_run)
    example = resnet_run / "examples" / json.loads((resnet_run / "examples" / "index.json").read_text())[0]["file"]
    expected = predict_probs(loaded.model, loaded.config, example)
    assert list(probs) == list(expected)
    for label in expected:
        assert probs[label] == pytest.approx(expected[label], abs=1e-4), label


def test_a_folder_run_records_and_cards_its_seeded_split(folder_run):
    config = json.loads((folder_run / "config.json").read_text())
    assert config["dataset"]["validation"] == "a seeded 20% of each class's images"
    card = ModelCard.load(folder_run / "README.md")
    assert card.data.datasets is None and card.data.eval_results is None
    total = config["dataset"]["train_images"] + config["dataset"]["val_images"]
    assert f"a local image folder: {total} images in 3 classes" in card.text.replace("**", "")
    assert "a seeded 20% of each class's images" in card.text
