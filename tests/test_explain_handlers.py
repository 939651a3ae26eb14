"""The "See why" handlers (ui/why/*.py), called directly on real tiny runs: every gallery reads the run's
own see_why/ images, and every word comes from the run's files (its labels, its split's name)."""
from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from analysis.stats import load_predictions, paired_comparison, reliability
from models.artifact import LoadedModel, load_model
from models.tasks import TASKS
from tests.test_compare import table_pairs
from tests.test_explain import ColourModel, small_binary_predictions
from ui.why import erasing, errors, gradcam, occlusion, threshold


def write_predictions(root, preds, split="val"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "predictions.json").write_text(json.dumps({
        "split": split, "indices": preds.indices.tolist(), "labels": preds.labels.tolist(),
        "predicted": preds.predicted.tolist(), "probabilities": preds.probabilities.tolist()}))
    return root


# --- Grad-CAM --------------------------------------------------------------------------------------

def test_gradcam_view_on_a_cifar_run(cifar_unchecked, cifar10_run):
    loaded = load_model(cifar10_run)
    example = json.loads((cifar10_run / "examples" / "index.json").read_text())[0]
    img = Image.open(cifar10_run / "examples" / example["file"]).convert("RGB")
    shown, caption = gradcam.gradcam_view(loaded, img)
    assert shown.size == (256, 256) and shown.mode == "RGB"
    assert "Grad-CAM for **" in caption and "predicted" in caption and "features" in caption
    shown, caption = gradcam.gradcam_view(loaded, img, "truck")
    assert "**truck**" in caption and "chosen" in caption
    assert gradcam.target_choices(loaded.config.labels)[0] == gradcam.PREDICTED


def test_gradcam_view_binary_both_classes(catsdogs_run):
    loaded = load_model(catsdogs_run)
    img = Image.open(next((catsdogs_run / "examples").glob("*.png")))
    for target in ("cat", "dog"):
        shown, caption = gradcam.gradcam_view(loaded, img, target)
        assert shown.size == (256, 256) and f"**{target}**" in caption and "layer4" in caption


# --- confusion matrix -> gallery, from the run folder alone ------------------------------------------

def test_every_cell_shows_the_run_images_of_exactly_that_cell(cifar_unchecked, cifar10_run, cifar10_dir, tmp_path):
    """Issue 21: the run folder is all the gallery reads (copied away from the dataset), and every cell,
    the diagonal too, shows the images the run kept of that cell, pixel for pixel the dataset's."""
    run = shutil.copytree(cifar10_run, tmp_path / "cifar10" / "copy")
    table, per_class, note = errors.confusion_frame(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert table.iloc[:, 1:].to_numpy().tolist() == metrics["confusion_matrix"]
    assert list(per_class["class"]) == metrics["labels"] and "Click a cell" in note
    assert note.startswith(f"{metrics['split']} split")
    preds, labels = load_predictions(run), metrics["labels"]
    kept = {row["index"] for row in json.loads((run / "see_why" / "index.json").read_text())["images"]}
    from torchvision.datasets import CIFAR10
    raw = CIFAR10(str(cifar10_dir), train=False, download=False).data
    diagonal = 0
    for t in range(10):
        for p in range(10):
            cell = errors.cell_from_select([t, p + 1])
            assert cell == (t, p)
            items, text = errors.cell_gallery(run, *cell, labels)
            in_cell = [int(i) for i in preds.indices[(preds.labels == t) & (preds.predicted == p)]]
            shown = [int(caption.split("#")[1].split(" ")[0]) for _, caption in items]
            assert sorted(shown) == sorted(i for i in in_cell if i in kept)
            for (img, _), index in zip(items, shown):
                assert np.array_equal(np.asarray(img.resize((32, 32), Image.NEAREST)), raw[index])
            assert f"{len(in_cell)} image(s)" in text
            diagonal += len(items) * (t == p)
    assert diagonal > 0, "no correctly classified image has a thumbnail"
    assert errors.cell_from_select([3, 0]) is None                      # the label column
    items, text = errors.cell_gallery(tmp_path, 0, 0, ["a", "b"])
    assert items == [] and "--predictions" in text


def test_an_empty_run_shows_real_headers(tmp_path):
    """Issue 24.14: no metrics.json: tables with their own headers, never placeholders."""
    table, per_class, note = errors.confusion_frame(tmp_path)
    assert list(table.columns) == [errors.TRUE_COLUMN] and list(per_class.columns) == ["class", "accuracy", "images"]
    assert "metrics.json" in note


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
    on = occlusion.box_from_centre(112, 48, 64, 224)
    off = occlusion.box_from_centre(112, 190, 64, 224)
    assert on == (16, 80, 64, 64) and occlusion.box_from_centre(0, 0, 500, 224) == (0, 0, 224, 224)
    view, table = occlusion.probe(models, _blue_square(), on)
    assert view.size == (256, 256) and list(table["model"]) == ["baseline", "random-erasing"]
    assert "P(dog)" in table.columns and (table["change"] < -0.1).all()
    _, table_off = occlusion.probe(models, _blue_square(), off)
    assert (table_off["change"].abs() < 0.02).all()


def test_occlusion_sweep_view(tmp_path):
    items, table, note = occlusion.sweep_view(_colour_models(tmp_path), _blue_square(), box=56, stride=56)
    assert len(items) == 2 and items[0][0].size == (256, 256) and [c for _, c in items] == ["baseline",
                                                                                            "random-erasing"]
    # The square covers rows 16-79, columns 80-143: the 56-px boxes at (0, 56) and (0, 112) cover most of it.
    assert set(table["lowest at (top, left)"]) <= {"(0, 56)", "(0, 112)"}
    assert (table["lowest"] < table["P(dog)"]).all() and "16 box positions" in note and "P(dog)" in note


# --- threshold, calibration, top losses: the class names and the split's own name ------------------

def test_threshold_report_names_the_class_and_the_split(tmp_path):
    """Issue 24.15: the note names the class and the split as the run's files do ("test"), never "class 1"."""
    root = write_predictions(tmp_path / "run", small_binary_predictions(), split="test")
    table, note = threshold.threshold_report(root, 0.8, ["cat", "dog"])
    values = dict(zip(table["at this threshold"], table["value"]))
    assert values["precision (dog)"] == "100.00%" and values["recall (dog)"] == "40.00%"
    assert values["dog called dog"] == 2 and values["cat called dog"] == 0 and "75.00%" in note
    assert "P(dog)" in note and "test split" in note and "class 1" not in note and "validation" not in note
    curve = threshold.threshold_curve_frame(root)
    assert set(curve["metric"]) == {"accuracy", "precision", "recall"} and curve["threshold"].max() == 1.0
    empty, msg = threshold.threshold_report(tmp_path / "none", 0.5, ["cat", "dog"])
    assert list(empty.columns) == threshold.TABLE_COLUMNS and empty.empty and "--predictions" in msg


def test_reliability_diagram_reports_the_ece_of_the_named_class(tmp_path):
    preds = small_binary_predictions()
    root = write_predictions(tmp_path / "run", preds, split="test")
    facts, note = threshold.reliability_facts(root, ["cat", "dog"], n_bins=5)
    assert f"{reliability(preds, 5, class_index=1)['ece']:.3f}" in note and "P(dog)" in note and "class" not in note
    assert facts["x_title"] == "P(dog)" and "test images" in facts["title"]
    observed = facts["value"][facts["value"]["curve"] == "observed"]
    assert len(observed) == sum(b["count"] > 0 for b in reliability(preds, 5, class_index=1)["bins"])


def test_top_losses_view(tmp_path):
    root = write_predictions(tmp_path / "run", small_binary_predictions(), split="test")
    items, table, note = errors.top_losses_view(root, ["cat", "dog"], k=5)
    assert items == [] and list(table["index"]) == [13, 12] and list(table["true"]) == ["cat", "dog"]
    assert note.startswith("2 of 8 images of the test split are misclassified")


def test_top_losses_view_with_the_run_images(cifar_unchecked, cifar10_run):
    items, table, _ = errors.top_losses_view(cifar10_run, TASKS["cifar10"].model_config().labels, k=4)
    assert len(items) == len(table) <= 4 and all(img.size == (128, 128) for img, _ in items)


# --- Random Erasing comparison ---------------------------------------------------------------------

def test_comparison_view(tmp_path):
    assert erasing.find_comparisons(tmp_path) == {}
    text, points = erasing.comparison_view(None)
    assert points is None and "training.compare --task catsdogs" in text
    folder = tmp_path / "compare" / "catsdogs"
    folder.mkdir(parents=True)
    data = paired_comparison(table_pairs(), ("baseline", "random-erasing"), replicates=500)
    (folder / "comparison.json").write_text(json.dumps(data))
    found = erasing.find_comparisons(tmp_path)
    assert found == {"catsdogs": folder / "comparison.json"}
    text, points = erasing.comparison_view(found["catsdogs"])
    assert "+15.00 points" in text and "p = 0.375" in text
    assert sorted(points[points.variant == "random-erasing"]["accuracy (%)"]) == [80.0, 80.0]      # per seed
