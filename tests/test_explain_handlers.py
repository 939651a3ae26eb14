"""The "See why" handlers (ui/explain_handlers.py, ui/val_images.py), called directly on real tiny runs."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from models.artifact import LoadedModel, load_model
from models.tasks import TASKS
from analysis.stats import confusion_cell, load_predictions, paired_comparison, reliability
from tests.test_compare import table_pairs
from tests.test_explain import ColourModel, small_binary_predictions
from ui import explain_handlers as h
from ui.val_images import ValidationImages


def write_predictions(root, preds):
    root.mkdir(parents=True, exist_ok=True)
    (root / "predictions.json").write_text(json.dumps({
        "split": "val", "indices": preds.indices.tolist(), "labels": preds.labels.tolist(),
        "predicted": preds.predicted.tolist(), "probabilities": preds.probabilities.tolist()}))
    return root


# --- Grad-CAM --------------------------------------------------------------------------------------

def test_gradcam_view_on_a_cifar_run(cifar_unchecked, cifar10_run):
    loaded = load_model(cifar10_run)
    example = json.loads((cifar10_run / "examples" / "index.json").read_text())[0]
    img = Image.open(cifar10_run / "examples" / example["file"]).convert("RGB")
    shown, caption = h.gradcam_view(loaded, img)
    assert shown.size == (256, 256) and shown.mode == "RGB"
    assert "Grad-CAM for **" in caption and "predicted" in caption and "features" in caption
    shown, caption = h.gradcam_view(loaded, img, "truck")
    assert "**truck**" in caption and "chosen" in caption
    assert h.target_choices(loaded.config.labels)[0] == h.PREDICTED


def test_gradcam_view_binary_both_classes(catsdogs_run):
    loaded = load_model(catsdogs_run)
    img = Image.open(next((catsdogs_run / "examples").glob("*.png")))
    for target in ("cat", "dog"):
        shown, caption = h.gradcam_view(loaded, img, target)
        assert shown.size == (256, 256) and f"**{target}**" in caption and "layer4" in caption


# --- confusion matrix -> gallery --------------------------------------------------------------------

def test_confusion_gallery_shows_exactly_the_images_of_the_clicked_cell(cifar_unchecked, cifar10_run, cifar10_dir):
    table, per_class, note = h.confusion_frame(cifar10_run)
    metrics = json.loads((cifar10_run / "metrics.json").read_text())
    assert table.iloc[:, 1:].to_numpy().tolist() == metrics["confusion_matrix"]
    assert list(per_class["class"]) == metrics["labels"] and "Click a cell" in note
    preds = load_predictions(cifar10_run)
    labels = metrics["labels"]
    images = ValidationImages("cifar10", cifar10_dir)
    from torchvision.datasets import CIFAR10
    raw = CIFAR10(str(cifar10_dir), train=False, download=False).data
    # Every cell with images: the gallery is exactly that cell, image by image.
    checked = 0
    for t in range(10):
        for p in range(10):
            cell = h.cell_from_select([t, p + 1])
            assert cell == (t, p)
            items, text = h.cell_gallery(cifar10_run, *cell, images, labels)
            expected = [int(i) for i in preds.indices[(preds.labels == t) & (preds.predicted == p)]]
            assert len(items) == len(expected) == metrics["confusion_matrix"][t][p]
            shown = [int(caption.split("#")[1].split(" ")[0]) for _, caption in items]
            assert sorted(shown) == sorted(expected)
            for (img, _), index in zip(items, shown):
                small = np.asarray(img.resize((32, 32), Image.NEAREST))
                assert np.array_equal(small, raw[index])
            assert f"{len(expected)} image(s)" in text
            checked += len(expected)
    assert checked == len(preds)
    assert h.cell_from_select([3, 0]) is None                      # the label column


def test_gallery_without_images_lists_them(cifar_unchecked, cifar10_run, tmp_path):
    preds = load_predictions(cifar10_run)
    t, p = int(preds.labels[0]), int(preds.predicted[0])
    items, text = h.cell_gallery(cifar10_run, t, p, ValidationImages("cifar10", tmp_path / "nowhere"),
                                 TASKS["cifar10"].model_config().labels)
    assert items == [] and "No thumbnails" in text and f"#{int(preds.indices[0])}" in text
    items, text = h.cell_gallery(tmp_path, 0, 0, None, ["a", "b"])
    assert items == [] and "--predictions" in text


def test_catsdogs_validation_images_follow_the_training_split(catsdogs_run, catsdogs_dir):
    labels = TASKS["catsdogs"].model_config().labels
    images = ValidationImages("catsdogs", catsdogs_dir, labels)
    preds = load_predictions(catsdogs_run)
    # The layout tests/datagen.py wrote: val/Cat/*.jpg then val/Dog/*.jpg, each sorted by name.
    files = [p for name in ("Cat", "Dog") for p in sorted((catsdogs_dir / "val" / name).glob("*.jpg"))]
    assert len(images) == len(files)
    for index, label in zip(preds.indices, preds.labels):
        assert files[index].parent.name.lower() == labels[label]          # same position, same class
        assert images.get(int(index)) is not None
    assert images.get(10_000) is None


# --- occlusion playground ----------------------------------------------------------------------------

def _colour_models(tmp_path):
    cfg = TASKS["catsdogs"].model_config()
    return [(name, LoadedModel(model=ColourModel(gain).eval(), config=cfg, info={}, root=tmp_path, source=name))
            for name, gain in (("baseline", 8.0), ("random-erasing", 2.0))]


def _blue_square() -> Image.Image:
    img = Image.new("RGB", (256, 256), (124, 116, 104))            # about the ImageNet mean colour
    img.paste((20, 20, 230), (96, 32, 160, 96))                      # a blue "dog" near the top
    return img


def test_occlusion_probe_box_over_the_object_lowers_p_dog(tmp_path):
    models = _colour_models(tmp_path)
    # 256 -> centre crop 224: the square is at rows 16-79, columns 80-143 of the model input.
    on = h.box_from_centre(112, 48, 64, 224)
    off = h.box_from_centre(112, 190, 64, 224)
    assert on == (16, 80, 64, 64) and h.box_from_centre(0, 0, 500, 224) == (0, 0, 224, 224)
    view, table = h.occlusion_probe(models, _blue_square(), on)
    assert view.size == (256, 256) and list(table["model"]) == ["baseline", "random-erasing"]
    assert (table["change"] < -0.1).all()
    _, table_off = h.occlusion_probe(models, _blue_square(), off)
    assert (table_off["change"].abs() < 0.02).all()


def test_occlusion_sweep_view(tmp_path):
    items, table = h.occlusion_sweep_view(_colour_models(tmp_path), _blue_square(), box=56, stride=56)
    assert len(items) == 2 and items[0][0].size == (256, 256) and "P(dog)" in items[0][1]
    # The square covers rows 16-79, columns 80-143: the 56-px boxes at (0, 56) and (0, 112) cover most of it.
    assert set(table["box at (top, left)"]) <= {"(0, 56)", "(0, 112)"}
    assert (table["lowest with the box"] < table["P(dog)"]).all() and (table["positions"] == 16).all()


# --- threshold, calibration, top losses ------------------------------------------------------------

def test_threshold_report_and_curve(tmp_path):
    root = write_predictions(tmp_path / "run", small_binary_predictions())
    table, note = h.threshold_report(root, 0.8)
    assert table.iloc[0]["precision"] == "100.00%" and table.iloc[0]["recall"] == "40.00%"
    assert table.iloc[0]["true pos"] == 2 and "75.00%" in note
    curve = h.threshold_curve_frame(root)
    assert set(curve["metric"]) == {"accuracy", "precision", "recall"} and curve["threshold"].max() == 1.0
    empty, msg = h.threshold_report(tmp_path / "none", 0.5)
    assert empty.empty and "--predictions" in msg


def test_reliability_figure_reports_the_ece(tmp_path):
    preds = small_binary_predictions()
    root = write_predictions(tmp_path / "run", preds)
    fig, note = h.reliability_figure(root, n_bins=10)
    assert isinstance(fig, Figure) and f"{reliability(preds)['ece']:.3f}" in note
    fig, note = h.reliability_figure(root, n_bins=5, class_index=1, labels=["cat", "dog"])
    assert isinstance(fig, Figure) and "class 1" in note


def test_top_losses_view(tmp_path):
    root = write_predictions(tmp_path / "run", small_binary_predictions())
    items, table, note = h.top_losses_view(root, ["cat", "dog"], None, k=5)
    assert items == [] and list(table["index"]) == [13, 12] and list(table["true"]) == ["cat", "dog"]
    assert note.startswith("2 of 8 validation images are misclassified")


def test_top_losses_view_with_images(cifar_unchecked, cifar10_run, cifar10_dir):
    items, table, _ = h.top_losses_view(cifar10_run, TASKS["cifar10"].model_config().labels,
                                        ValidationImages("cifar10", cifar10_dir), k=4)
    assert len(items) == len(table) <= 4 and all(img.size == (128, 128) for img, _ in items)


# --- Random Erasing comparison ---------------------------------------------------------------------

def test_comparison_view(tmp_path):
    assert h.find_comparisons(tmp_path) == []
    text, fig = h.comparison_view(None)
    assert fig is None and "training.compare" in text
    folder = tmp_path / "compare" / "catsdogs"
    folder.mkdir(parents=True)
    data = paired_comparison(table_pairs(), ("baseline", "random-erasing"), replicates=500)
    (folder / "comparison.json").write_text(json.dumps(data))
    found = h.find_comparisons(tmp_path)
    assert found == [folder / "comparison.json"]
    text, fig = h.comparison_view(found[0])
    assert isinstance(fig, Figure) and "+15.00 points" in text and "p = 0.375" in text
