"""The See why tab (ui/explain_tab.py and its sub-tabs in ui/why/): catalog adapters on real tiny runs,
and the Blocks wiring."""
from __future__ import annotations

import json

import gradio as gr
import pytest
from PIL import Image

from analysis.stats import load_predictions, paired_comparison
from tests.test_compare import table_pairs
from ui import explain_tab
from ui.why import erasing, errors, gradcam, occlusion, threshold
from ui.catalog import Catalog


@pytest.fixture(scope="module")
def catalog(runs_root, cifar10_run, catsdogs_run, catsdogs_re_run):
    return Catalog.from_sources(runs_root)


def _key(catalog, task, variant="baseline"):
    return catalog.default_key(task, variant)


def test_adapters(catalog, catsdogs_dir, cifar_unchecked):
    cifar = _key(catalog, "cifar10")
    run_root = catalog.entry(cifar).root
    # A decoded image, as a Python caller hands one in (a path would name a server file: refused).
    example = Image.open(run_root / "examples" / json.loads((run_root / "examples" / "index.json").read_text())[0]["file"])
    heat, caption = gradcam.explain(catalog, example, cifar, "cat")
    assert heat.size == (256, 256) and "**cat**" in caption
    assert gradcam.explain(catalog, None, cifar) == (None, gradcam.NOTHING_YET)
    heat, caption = gradcam.explain(catalog, example, None, task="cifar10")      # the default model
    assert heat.size == (256, 256) and "predicted" in caption
    with pytest.raises(gr.Error):
        gradcam.explain(catalog, example, None)
    with pytest.raises(gr.Error):
        gradcam.explain(catalog, example, "cifar10/none")

    table, per_class, note, gallery, text = errors.confusion(catalog, cifar)
    assert table.data.shape == (10, 11) and gallery == [] and text == ""
    assert table.data.iloc[:, 1:].to_numpy().sum() == json.loads((run_root / "metrics.json").read_text())["num_images"]
    preds = load_predictions(run_root)
    t, p = int(preds.labels[0]), int(preds.predicted[0])
    items, text = errors.confusion_cell_images(catalog, cifar, [t, p + 1])
    assert 0 < len(items) <= int(((preds.labels == t) & (preds.predicted == p)).sum())
    assert errors.confusion_cell_images(catalog, cifar, [t, 0])[0] == []

    cd = _key(catalog, "catsdogs")
    view, frame = occlusion.occlusion_probe(catalog, Image.open(catsdogs_dir / "val" / "Dog" / "dog.0.jpg"), None, None,
                                              112, 112, 56)
    assert view.size == (256, 256) and list(frame["model"]) == ["baseline", "Random Erasing"]
    table, note = threshold.threshold(catalog, cd, 0.3)
    assert "above 0.30" in note and list(table.columns) == threshold.TABLE_COLUMNS
    curve, plot, ece = threshold.calibration(catalog, cd)
    assert isinstance(plot, gr.ScatterPlot) and "Expected calibration error" in ece and len(curve)
    gallery, frame, note = errors.losses(catalog, cd)
    assert len(gallery) == len(frame) and "misclassified" in note


def test_comparison_adapters(tmp_path):
    folder = tmp_path / "compare" / "catsdogs"
    folder.mkdir(parents=True)
    data = paired_comparison(table_pairs(), ("baseline", "random-erasing"), replicates=200)
    (folder / "comparison.json").write_text(json.dumps(data))
    catalog = Catalog([], runs_dir=tmp_path)
    assert list(erasing.find_comparisons(catalog.runs_dir)) == ["catsdogs"]
    text, points = erasing.comparison(catalog, "catsdogs")
    assert "p = 0.375" in text and len(points) == 4
    with pytest.raises(gr.Error, match="comparison_name must be one of 'catsdogs', not 'other'"):
        erasing.comparison(catalog, "other")


def test_build_wires_every_event_with_an_api_name(catalog, cifar_unchecked):
    with gr.Blocks() as demo:
        explain_tab.build(catalog)
        with gr.Row():
            image = gr.Image(type="filepath")
            run = gr.Dropdown(catalog.choices("cifar10"), value=_key(catalog, "cifar10"))
        gradcam.add_gradcam(catalog, "cifar10", image, run, api_name="gradcam_cifar10")
        gradcam.add_gradcam(catalog, "catsdogs", image, run, variant="random-erasing", api_name="gradcam_catsdogs_re")
    names = {dep.get("api_name") for dep in demo.config["dependencies"]}
    for name in ("gradcam", "gradcam_targets", "confusion", "confusion_cell", "occlusion_probe", "occlusion_click",
                 "occlusion_sweep", "threshold", "calibration", "top_losses", "erasing_study", "gradcam_cifar10",
                 "gradcam_catsdogs_re"):
        assert name in names
    assert None not in names


def test_build_with_no_runs_says_what_to_train(tmp_path):
    with gr.Blocks() as demo:
        explain_tab.build(Catalog.from_sources(tmp_path))
    notices = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "notice" in (b.elem_classes or [])]
    assert sum("No trained run yet" in n for n in notices) == 2                      # Grad-CAM, confusion + losses
    assert any("python -m training.train --task catsdogs" in n for n in notices)    # threshold, occlusion
