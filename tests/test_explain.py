"""Grad-CAM, overlay and occlusion (analysis/explain.py); predictions.json diagnostics (analysis/stats.py)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from models.artifact import load_model
from analysis.explain import (class_scores, erase, explain_image, gradcam, gradcam_layer, occlusion_sweep,
                            overlay, resolve_target, sweep_positions)
from models.tasks import TASKS
from analysis.stats import (Predictions, confusion_cell, load_predictions, reliability, reliability_bins,
                            threshold_metrics, threshold_sweep, top_losses)

BINARY = TASKS["catsdogs"].model_config()     # one-logit head: P(dog) = sigmoid(logit)


class ColourModel(nn.Module):
    """A hand-made one-logit "cats vs dogs" model: blue evidence says dog, red says cat.

    detect: channel 0 = ReLU(blue - red), channel 1 = ReLU(red - blue) (on the normalised input);
    logit = gain * (mean of channel 0 - mean of channel 1). On a background of zeros (the
    normalised mean colour) only coloured patches move the logit, so what an erase box or a
    Grad-CAM map should show is known exactly.
    """

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.detect = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        w = torch.zeros(2, 3, 1, 1)
        w[0, 2], w[0, 0], w[1, 0], w[1, 2] = 1, -1, 1, -1
        self.detect.weight.data.copy_(w)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 1)
        self.head.weight.data.copy_(torch.tensor([[gain, -gain]]))
        self.head.bias.data.zero_()

    def forward(self, x):
        return self.head(self.pool(self.relu(self.detect(x))).flatten(1))


def patch_image(size=64, blue=(8, 40), red=None, side=16) -> torch.Tensor:
    """Normalised input (1, 3, size, size): zeros, a blue patch (and optionally a red one)."""
    x = torch.zeros(1, 3, size, size)
    for where, (hot, cold) in ((blue, (2, 0)), (red, (0, 2))):
        if where is not None:
            top, left = where
            x[0, hot, top:top + side, left:left + side] = 2.0
            x[0, cold, top:top + side, left:left + side] = -2.0
    return x


# --- Grad-CAM on trained tiny runs ------------------------------------------------------------

@pytest.mark.parametrize("run_fixture", ["cifar10_run", "mnist_run", "catsdogs_run"])
def test_gradcam_of_trained_tiny_runs_has_input_size_finite_non_constant(request, run_fixture):
    if run_fixture == "cifar10_run":
        request.getfixturevalue("cifar_unchecked")
    run = request.getfixturevalue(run_fixture)
    loaded = load_model(run)
    cfg = loaded.config
    example = json.loads((run / "examples" / "index.json").read_text())[0]
    result = explain_image(loaded.model, cfg, run / "examples" / example["file"])
    size = cfg.input_size
    assert result.heatmap.shape == (size, size)
    assert result.heatmap.dtype == np.float32
    assert np.isfinite(result.heatmap).all()
    assert result.raw_max > 0 and result.heatmap.max() == pytest.approx(1.0)
    assert result.heatmap.min() >= 0 and result.heatmap.std() > 1e-3      # not constant
    assert result.target == int(np.argmax(list(result.probs.values())))   # predicted class by default
    assert result.label == cfg.labels[result.target]
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.view.size == (size, size)
    assert not loaded.model.training                                       # left in eval mode
    shown = overlay(result.view, result.heatmap, size=256)
    assert shown.size == (256, 256) and shown.mode == "RGB"


def test_gradcam_layer_is_the_last_conv_stage(catsdogs_run):
    loaded = load_model(catsdogs_run)
    assert gradcam_layer(loaded.model, loaded.config) is loaded.model.layer4
    from models.registry import create_model
    cfg = TASKS["cifar10"].model_config()
    vgg = create_model(cfg)
    layer = gradcam_layer(vgg, cfg)
    relus = [i for i, m in enumerate(vgg.features) if isinstance(m, nn.ReLU)]
    assert layer is vgg.features[relus[-1]] and relus[-1] == len(vgg.features) - 2   # before the last pool


def test_gradcam_binary_targets_explain_cat_with_the_negated_logit():
    """The one-logit model: 'dog' explains +logit, 'cat' explains -logit; so the dog map
    lights up the blue patch only and the cat map the red patch only."""
    model = ColourModel().eval()
    x = patch_image(blue=(8, 40), red=(40, 8))
    maps = {}
    for target in ("dog", "cat"):
        m, classes, probs = gradcam(model, BINARY, x, target, layer=model.relu)
        assert m.shape == (1, 64, 64) and torch.isfinite(m).all()
        assert classes.tolist() == [BINARY.labels.index(target)]
        assert probs.shape == (1, 2) and probs.sum().item() == pytest.approx(1.0)
        maps[target] = m[0]
    blue = (slice(8, 24), slice(40, 56))
    red = (slice(40, 56), slice(8, 24))
    assert maps["dog"][blue].min() > 0 and maps["dog"][red].abs().max() == 0
    assert maps["cat"][red].min() > 0 and maps["cat"][blue].abs().max() == 0
    # Away from both patches there is no evidence for either class.
    assert maps["dog"][0:8, 0:8].abs().max() == 0 and maps["cat"][0:8, 0:8].abs().max() == 0
    # class_scores gives sigmoid(score[c]) = P(c) for both classes.
    scores = class_scores(model, BINARY, x)
    p_dog = torch.sigmoid(model(x))[0, 0]
    assert torch.sigmoid(scores[0]).tolist() == pytest.approx([1 - p_dog.item(), p_dog.item()])


def test_resolve_target_by_index_label_or_prediction():
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    assert resolve_target(BINARY, None, probs).tolist() == [1, 0]
    assert resolve_target(BINARY, "cat", probs).tolist() == [0, 0]
    assert resolve_target(BINARY, 1, probs).tolist() == [1, 1]
    with pytest.raises(ValueError, match="unknown class"):
        resolve_target(BINARY, "horse", probs)
    with pytest.raises(ValueError, match="out of range"):
        resolve_target(BINARY, 2, probs)


def test_overlay_sizes_and_empty_map():
    img = Image.new("RGB", (32, 32), (10, 200, 30))
    heat = np.zeros((8, 8), np.float32)
    assert np.array_equal(np.asarray(overlay(img, heat)), np.asarray(img))      # nothing to show
    heat[0, 0] = 3.0
    out = overlay(img, heat, alpha=0.6, size=128)
    assert out.size == (128, 128) and out.mode == "RGB"
    arr = np.asarray(out)
    assert not np.array_equal(arr[0, 0], [10, 200, 30])       # coloured where the map is high
    assert np.array_equal(arr[-1, -1], [10, 200, 30])         # untouched where it is zero
    gray = overlay(Image.new("L", (16, 16), 50), np.ones((16, 16)))
    assert gray.mode == "RGB"


# --- occlusion -----------------------------------------------------------------------------------

def test_erase_fills():
    cfg = BINARY
    x = torch.randn(2, 3, 20, 20)
    out = erase(x, (2, 3, 5, 4), cfg, "mean")
    assert out[:, :, 2:7, 3:7].abs().max() == 0
    mask = torch.ones(20, 20, dtype=torch.bool)
    mask[2:7, 3:7] = False
    assert torch.equal(out[:, :, mask], x[:, :, mask]) and not torch.equal(out, x)
    black = erase(x, (0, 0, 4, 4), cfg, "black")
    pixels = black[:, :, :4, :4] * torch.tensor(cfg.std).view(1, 3, 1, 1) + torch.tensor(cfg.mean).view(1, 3, 1, 1)
    assert pixels.abs().max() < 1e-6                           # pixel value 0 once un-normalised
    assert torch.equal(erase(x, (0, 0, 4, 4), cfg, "noise", seed=3), erase(x, (0, 0, 4, 4), cfg, "noise", seed=3))
    assert torch.equal(erase(x, (30, 30, 4, 4), cfg), x)       # a box outside the image erases nothing
    with pytest.raises(ValueError):
        erase(x, (0, 0, 4, 4), cfg, "blur")


def test_sweep_positions_cover_the_edges():
    assert sweep_positions(64, 16, 8) == [0, 8, 16, 24, 32, 40, 48]
    assert sweep_positions(10, 4, 4) == [0, 4, 6]
    assert sweep_positions(8, 20, 4) == [0]


def test_occlusion_sweep_drops_p_dog_exactly_where_the_box_covers_the_object():
    """A synthetic image with one blue 16x16 patch ("dog") at rows 8-23, columns 40-55."""
    model = ColourModel().eval()
    x = patch_image(blue=(8, 40))
    occ = occlusion_sweep(model, BINARY, x, box=16, stride=8, class_index="dog")
    assert occ.label == "dog" and occ.class_index == 1
    assert occ.probs.shape == (7, 7) and occ.tops == occ.lefts == [0, 8, 16, 24, 32, 40, 48]
    base = torch.sigmoid(torch.tensor(8.0 * 4 * 256 / 4096)).item()     # logit = gain * mean(blue - red)
    assert occ.base == pytest.approx(base, abs=1e-6)
    for r, top in enumerate(occ.tops):
        for c, left in enumerate(occ.lefts):
            overlap = max(0, min(top + 16, 24) - max(top, 8)) * max(0, min(left + 16, 56) - max(left, 40))
            expected = torch.sigmoid(torch.tensor(8.0 * 4 * (256 - overlap) / 4096)).item()
            assert occ.probs[r, c] == pytest.approx(expected, abs=1e-5), (top, left)
    assert occ.most_sensitive() == (8, 40, pytest.approx(0.5, abs=1e-6))   # covering it all: no evidence
    pix = occ.pixel_map(64)
    assert pix.shape == (64, 64) and np.isfinite(pix).all()
    assert pix[16, 48] < pix[56, 8] == pytest.approx(base, abs=1e-6)


def test_occlusion_sweep_runs_on_a_trained_vgg(cifar_unchecked, cifar10_run):
    loaded = load_model(cifar10_run)
    x = torch.randn(3, 32, 32)
    occ = occlusion_sweep(loaded.model, loaded.config, x, box=8, stride=8, class_index=3, fill=0.5)
    assert occ.probs.shape == (4, 4) and occ.label == loaded.config.labels[3]
    # Each cell is P(class 3) of the input with that 8x8 box set to 0.5, computed here one by one.
    with torch.no_grad():
        for r in range(4):
            for c in range(4):
                boxed = x.clone()
                boxed[:, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = 0.5
                expected = torch.softmax(loaded.model(boxed[None]), 1)[0, 3].item()
                assert occ.probs[r, c] == pytest.approx(expected, abs=1e-5), (r, c)
        assert occ.base == pytest.approx(torch.softmax(loaded.model(x[None]), 1)[0, 3].item(), abs=1e-5)


# --- predictions.json diagnostics ----------------------------------------------------------------

def small_binary_predictions() -> Predictions:
    """Eight images, P(dog) and labels chosen so every number below is easy to check by hand."""
    p_dog = [0.05, 0.30, 0.45, 0.62, 0.55, 0.70, 0.85, 0.95]
    labels = [0, 0, 1, 0, 1, 1, 1, 1]
    probs = [[round(1 - p, 6), p] for p in p_dog]
    predicted = [int(p > 0.5) for p in p_dog]
    return Predictions.from_dict({"split": "val", "indices": [10, 11, 12, 13, 14, 15, 16, 17],
                                  "labels": labels, "predicted": predicted, "probabilities": probs})


def test_threshold_metrics_by_hand():
    preds = small_binary_predictions()
    m = threshold_metrics(preds, 0.5)
    # says dog: 0.62 (cat), 0.55, 0.70, 0.85, 0.95 (dogs) -> tp 4, fp 1; missed dog 0.45 -> fn 1; tn 2
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (4, 1, 1, 2)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(4 / 5) and m["recall"] == pytest.approx(4 / 5)
    assert m["f1"] == pytest.approx(0.8)
    assert m["accuracy"] == pytest.approx(preds.accuracy)    # 0.5 reproduces the model's own predictions
    m = threshold_metrics(preds, 0.8)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 0, 3, 3)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 5)
    m = threshold_metrics(preds, 1.0)
    assert m["precision"] is None and m["recall"] == 0 and m["f1"] is None
    curve = threshold_sweep(preds)
    assert len(curve) == 101 and curve[50]["threshold"] == 0.5 and curve[0]["recall"] == 1.0


def test_reliability_and_ece_by_hand():
    # Two bins: (0, 0.5] holds 0.2 (outcome 0) and 0.4 (outcome 1); (0.5, 1] holds 0.6, 0.8, 1.0 (1, 1, 0).
    out = reliability_bins([0.2, 0.4, 0.6, 0.8, 1.0], [0, 1, 1, 1, 0], n_bins=2)
    lo, hi = out["bins"]
    assert (lo["count"], hi["count"]) == (2, 3)
    assert lo["confidence"] == pytest.approx(0.3) and lo["accuracy"] == pytest.approx(0.5)
    assert hi["confidence"] == pytest.approx(0.8) and hi["accuracy"] == pytest.approx(2 / 3)
    assert out["ece"] == pytest.approx(2 / 5 * 0.2 + 3 / 5 * (0.8 - 2 / 3))
    assert out["mce"] == pytest.approx(0.2)
    perfect = reliability_bins([1.0, 1.0, 0.0], [1, 1, 0], n_bins=10)
    assert perfect["ece"] == 0 and perfect["bins"][5]["count"] == 0 and perfect["bins"][5]["accuracy"] is None
    preds = small_binary_predictions()
    top = reliability(preds, n_bins=10)
    assert sum(b["count"] for b in top["bins"]) == 8
    assert all(b["count"] == 0 for b in top["bins"][:5])     # top-label confidence is >= 0.5
    dog = reliability(preds, n_bins=10, class_index=1)
    assert dog["bins"][0]["count"] == 1 and dog["bins"][0]["accuracy"] == 0.0      # P=0.05, a cat


def test_top_losses_most_confidently_wrong_first():
    preds = small_binary_predictions()
    rows = top_losses(preds, k=5)
    # Wrong: row 2 (dog, P(dog)=0.45) and row 3 (cat, P(dog)=0.62 -> P(cat)=0.38): row 3 first.
    assert [r["row"] for r in rows] == [3, 2]
    assert rows[0]["index"] == 13 and rows[0]["label"] == 0 and rows[0]["predicted"] == 1
    assert rows[0]["p_true"] == pytest.approx(0.38) and rows[0]["confidence"] == pytest.approx(0.62)
    assert rows[0]["loss"] == pytest.approx(-np.log(0.38))
    assert [r["row"] for r in top_losses(preds, k=1)] == [3]


def confusion_counts(preds: Predictions) -> np.ndarray:
    """(K, K) counts, rows: true class, columns: predicted (as metrics.json), by hand."""
    k = preds.num_classes
    return np.bincount(preds.labels * k + preds.predicted, minlength=k * k).reshape(k, k)


def test_confusion_cell_lists_exactly_that_cell():
    preds = small_binary_predictions()
    cm = confusion_counts(preds)
    assert cm.tolist() == [[2, 1], [1, 4]]
    for t in range(2):
        for p in range(2):
            rows = confusion_cell(preds, t, p)
            assert len(rows) == cm[t, p]
            assert all(preds.labels[r] == t and preds.predicted[r] == p for r in rows)
    assert confusion_cell(preds, 1, 1).tolist() == [7, 6, 5, 4]     # most confident first
    assert preds.indices[confusion_cell(preds, 0, 1)].tolist() == [13]


def test_predictions_validation(tmp_path):
    good = {"indices": [0], "labels": [1], "predicted": [1], "probabilities": [[0.2, 0.8]]}
    (tmp_path / "predictions.json").write_text(json.dumps(good))
    assert load_predictions(tmp_path).accuracy == 1.0
    for bad, msg in (({**good, "labels": [1, 0]}, "length"), ({**good, "labels": [2]}, "class id"),
                     ({**good, "probabilities": [[0.2, 1.8]]}, r"\[0, 1\]"),
                     ({k: v for k, v in good.items() if k != "predicted"}, "missing")):
        with pytest.raises(ValueError, match=msg):
            Predictions.from_dict(bad)


def test_predictions_of_a_real_run_match_its_metrics(catsdogs_run):
    preds = load_predictions(catsdogs_run)
    metrics = json.loads((catsdogs_run / "metrics.json").read_text())
    assert confusion_counts(preds).tolist() == metrics["confusion_matrix"]
    assert preds.accuracy == pytest.approx(metrics["accuracy"])
    # Top-label ECE by hand from the file: ten bins (k/10, (k+1)/10], bin 0 also takes 0.
    stored = json.loads((catsdogs_run / "predictions.json").read_text())
    bins: dict[int, list[tuple[float, bool]]] = {}
    for probs, label in zip(stored["probabilities"], stored["labels"]):
        confidence = max(probs)
        bins.setdefault(max(0, math.ceil(confidence * 10) - 1), []).append((confidence, probs.index(confidence) == label))
    n = len(stored["labels"])
    expected = sum(len(b) / n * abs(sum(ok for _, ok in b) / len(b) - sum(c for c, _ in b) / len(b))
                   for b in bins.values())
    assert reliability(preds)["ece"] == pytest.approx(expected, abs=1e-12)
