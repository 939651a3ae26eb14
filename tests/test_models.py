"""Architectures, registry and the release artifact round trip."""
from __future__ import annotations

import json

import pytest
import torch

from models.artifact import ArtifactError, load_model, save_release, write_manifest
from models.registry import ARCHITECTURES, ModelConfig, create_model
from models.predict import logits_to_probs
from models.tasks import TASKS

# Parameter counts documented in models/vgg.py and models/resnet.py.
PARAMETERS = {"cifar10": 20_297_674, "mnist": 20_296_522, "catsdogs": 23_510_081}


@pytest.mark.parametrize("task", sorted(PARAMETERS))
def test_forward_shape_and_parameter_count(task):
    cfg = TASKS[task].model_config()
    torch.manual_seed(0)
    model = create_model(cfg).eval()
    x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, cfg.num_outputs)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[task]


def test_every_registered_architecture_is_used_by_a_task():
    used = {t.architecture for t in TASKS.values()} | {a for t in TASKS.values() for a in t.alternatives}
    assert used == set(ARCHITECTURES)


def test_config_json_is_what_timm_reads_for_resnet50():
    """timm builds `architecture` with `num_classes` outputs and takes its preprocessing from
    `pretrained_cfg` (timm.models._hub); a two-class ResNet50 is one logit."""
    d = TASKS["catsdogs"].model_config().to_dict()
    assert (d["architecture"], d["num_classes"]) == ("resnet50", 1)
    assert d["pretrained_cfg"] == {"architecture": "resnet50", "input_size": [3, 224, 224],
                                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "crop_pct": 0.875,
                                   "crop_mode": "center", "interpolation": "bilinear", "num_classes": 1,
                                   "label_names": ["cat", "dog"]}
    assert ModelConfig.from_dict({**d, "architecture": "resnet50_binary", "num_classes": 2}).architecture == "resnet50"


def test_vgg_has_sixteen_conv_layers_each_with_batchnorm_and_five_pools():
    model = create_model(TASKS["cifar10"].model_config())
    layers = list(model.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 16
    assert all(isinstance(layers[i + 1], torch.nn.BatchNorm2d) and isinstance(layers[i + 2], torch.nn.ReLU)
               for i in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in layers) == 5
    assert model.features[0].in_channels == 3
    assert create_model(TASKS["mnist"].model_config()).features[0].in_channels == 1


def test_resnet_head_is_one_logit_without_sigmoid():
    model = create_model(TASKS["catsdogs"].model_config())
    assert isinstance(model.fc, torch.nn.Linear) and model.fc.out_features == 1
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in model.modules())


def test_binary_probabilities_apply_sigmoid_once():
    cfg = TASKS["catsdogs"].model_config()
    probs = logits_to_probs(torch.tensor([[-4.0], [0.0], [4.0]]), cfg)
    assert torch.allclose(probs[:, 1], torch.sigmoid(torch.tensor([-4.0, 0.0, 4.0])))
    assert torch.allclose(probs.sum(1), torch.ones(3))
    assert probs[0].argmax() == 0 and probs[2].argmax() == 1   # a double sigmoid would say 1 for both


def test_config_json_alone_rebuilds_the_model():
    cfg = TASKS["mnist"].model_config()
    again = ModelConfig.from_dict(json.loads(json.dumps({**cfg.to_dict(), "recipe": {"epochs": 1}})))
    assert again == cfg


@pytest.mark.parametrize("bad, message", [
    ({"architecture": "alexnet"}, "unknown architecture"),
    ({"in_channels": 2}, "in_channels"),
    ({"labels": ["a"]}, "labels"),
    ({"std": [0.0]}, "positive"),
])
def test_invalid_config_names_the_problem(bad, message):
    d = {**TASKS["mnist"].model_config().to_dict(), **bad}
    with pytest.raises(ValueError, match=message):
        ModelConfig.from_dict(d)


@pytest.mark.parametrize("task", ["mnist", "catsdogs"])
def test_save_load_round_trip_identical_logits_and_exact_files(tmp_path, task):
    cfg = TASKS[task].model_config()
    torch.manual_seed(1)
    model = create_model(cfg).eval()
    save_release(tmp_path, model, {**cfg.to_dict(), "task": task})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SHA256SUMS", "config.json", "model.safetensors"]
    loaded = load_model(tmp_path)
    assert not loaded.model.training
    x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_loading_is_strict_about_architecture(tmp_path):
    mnist, cifar = TASKS["mnist"].model_config(), TASKS["cifar10"].model_config()
    save_release(tmp_path, create_model(mnist), mnist.to_dict())
    # Same architecture name, but config now says 3 input channels: shapes no longer match.
    (tmp_path / "config.json").write_text(json.dumps(cifar.to_dict()))
    write_manifest(tmp_path)   # digests recorded again: the files are consistent, the shapes are not
    with pytest.raises(ArtifactError, match=r"model.safetensors: features.0.weight has shape"):
        load_model(tmp_path)


def test_missing_folder_or_unknown_source_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="no such model folder"):
        load_model(tmp_path / "nope" / "deeper")
