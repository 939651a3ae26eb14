"""Test-time augmentation (analysis/tta.py) and `training.evaluate --tta --predictions`."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

from models.augment import EvalTransform, normalize
from models.tasks import TASKS
from analysis.tta import TTAModel

CIFAR = TASKS["cifar10"].model_config()
CATSDOGS = TASKS["catsdogs"].model_config()


class Recorder(nn.Module):
    """Logits from the input's per-channel means; remembers every input it was given."""

    def __init__(self, outputs: int):
        super().__init__()
        self.outputs = outputs
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        m = x.mean(dim=(2, 3))
        return m[:, :1] * 3 if self.outputs == 1 else torch.cat([m, -m, m * 2, m[:, :1]], 1)[:, :self.outputs]


def test_default_shift():
    assert TTAModel(Recorder(10), CIFAR).shift == 2 and TTAModel(Recorder(1), CATSDOGS).shift == 14


def test_views_are_exact_crops_of_the_stored_image():
    torch.manual_seed(0)
    stored = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    x = EvalTransform(crop=CATSDOGS.stored_size, mean=CATSDOGS.mean, std=CATSDOGS.std)(stored)
    tta = TTAModel(Recorder(1), CATSDOGS, flip=True, shift=14)
    views = list(tta.views(x))
    assert len(views) == tta.num_views == 10
    centre = EvalTransform.from_config(CATSDOGS)(stored)
    assert torch.equal(views[0], centre) and torch.equal(views[1], centre.flip(-1))
    top = left = (256 - 224) // 2
    assert torch.equal(views[2], x[..., top - 14:top - 14 + 224, left:left + 224])       # moved up
    assert torch.equal(views[8], x[..., top:top + 224, left + 14:left + 14 + 224])       # moved right
    assert all(v.shape == (2, 3, 224, 224) for v in views)


def test_small_stored_images_are_padded_with_black():
    stored = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    x = EvalTransform(crop=CIFAR.stored_size, mean=CIFAR.mean, std=CIFAR.std)(stored)
    views = list(TTAModel(Recorder(10), CIFAR, flip=False, shift=2).views(x))
    assert len(views) == 5 and torch.equal(views[0], x)
    up = views[1]                                               # content moved down: 2 black rows on top
    pixels = up * torch.tensor(CIFAR.std).view(1, 3, 1, 1) + torch.tensor(CIFAR.mean).view(1, 3, 1, 1)
    assert pixels[..., :2, :].abs().max() < 1e-5
    assert torch.allclose(up[..., 2:, :], x[..., :30, :])


@pytest.mark.parametrize("cfg", [CIFAR, CATSDOGS], ids=["softmax", "one-logit"])
def test_tta_probabilities_are_the_mean_over_views(cfg):
    from models.predict import logits_to_probs
    torch.manual_seed(1)
    size = 32 if cfg is CIFAR else 256
    x = normalize(torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8), cfg.mean, cfg.std)
    rec = Recorder(cfg.num_outputs)
    tta = TTAModel(rec, cfg)
    probs = logits_to_probs(tta(x), cfg)
    expected = torch.stack([logits_to_probs(rec.__class__(cfg.num_outputs)(v), cfg) for v in tta.views(x)]).mean(0)
    assert len(rec.seen) == 10
    assert torch.allclose(probs, expected, atol=1e-5)
    plain = TTAModel(Recorder(cfg.num_outputs), cfg, flip=False, shift=0)
    assert plain.num_views == 1


def test_evaluate_reports_tta_beside_plain_accuracy_and_writes_predictions(cifar_unchecked, cifar10_run,
                                                                           cifar10_dir, tmp_path, capsys):
    from training.evaluate import get_args_parser, main
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.safetensors", "metrics.json"):
        shutil.copy(cifar10_run / name, run / name)
    metrics = main(get_args_parser().parse_args([str(run), "--data-dir", str(cifar10_dir), "--device", "cpu",
                                                 "--tta", "--predictions"]))
    stored = json.loads((cifar10_run / "metrics.json").read_text())
    assert metrics["accuracy"] == stored["accuracy"]                    # plain accuracy unchanged
    for key in ("tta_accuracy", "tta_flip_accuracy"):             # a whole number of the images, right
        right = metrics[key] * metrics["num_images"]
        assert abs(right - round(right)) < 1e-9 and 0 <= round(right) <= metrics["num_images"], (key, metrics[key])
    assert metrics["tta"] == {"views": 10, "flip": True, "shift_px": 2}
    out = capsys.readouterr().out
    assert "accuracy 0." in out and "TTA (flip + 2 px shifts, 10 views)" in out
    written = json.loads((run / "predictions.json").read_text())
    original = json.loads((cifar10_run / "predictions.json").read_text())
    for key in ("split", "indices", "labels", "predicted"):
        assert written[key] == original[key]
    assert torch.allclose(torch.tensor(written["probabilities"]), torch.tensor(original["probabilities"]),
                          atol=1e-5)
    other = tmp_path / "p.json"
    main(get_args_parser().parse_args([str(run), "--data-dir", str(cifar10_dir), "--device", "cpu",
                                       "--limit-val", "8", "--predictions", str(other)]))
    assert len(json.loads(other.read_text())["indices"]) == 8
