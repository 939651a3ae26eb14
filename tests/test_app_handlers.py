"""The app's handlers called directly (no server): every image mode, the sketch preprocessing,
the missing-model messages, run discovery, and every tab's data read from real tiny runs.
"""
from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from models.digits import to_mnist_digit
from models.tasks import TASKS
from models.runs import discover_runs
from tests.conftest import UNREACHABLE_HUB_REPO
from ui import architecture_tab, augment_tab, cards_tab, classify_tab, curves_tab
from ui.catalog import Catalog, hub_models, missing_model_message
from ui.common import read_image

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MNIST_DIGIT = ASSETS / "mnist_3.png"


def payload(path: Path) -> dict:
    """What an image event receives from Gradio (ui.common.UploadedImage): a FileData dict naming the
    copy Gradio stored in its cache folder (the only files the handlers read)."""
    from gradio.processing_utils import save_file_to_cache
    from gradio.utils import get_upload_folder
    stored = save_file_to_cache(path, get_upload_folder())
    return {"path": stored, "url": None, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def assert_distribution(probs: dict, labels) -> None:
    assert list(probs) == list(labels)
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6)


def answers(catalog: Catalog, task: str, image, *runs, blank_is_empty: bool = False) -> tuple:
    """The classify tab's answer: (model view, then per model its probabilities and chart frame, or
    None and the reason when that model is missing). The model view is its own endpoint's
    (classify_tab.model_input), asked when a model answered, as the page does."""
    result = classify_tab.classify(catalog, task, image, runs, blank_is_empty=blank_is_empty)
    answered = any(isinstance(a, classify_tab.Answer) for a in result.answers)
    seen = classify_tab.model_input(catalog, task, image, runs) if answered else None
    out = [Image.open(seen) if seen else None]
    for answer in result.answers:
        found = isinstance(answer, classify_tab.Answer)
        out += [answer.probs, classify_tab.probs_frame(answer.probs)] if found else [None, answer]
    return tuple(out)


def cifar10(catalog: Catalog, image, run=None) -> tuple:
    """(probabilities, chart frame, model view) of the CIFAR-10 tab."""
    seen, probs, frame = answers(catalog, "cifar10", image, run)
    return probs, frame if probs is not None else classify_tab.probs_frame(None, TASKS["cifar10"].labels), seen


@pytest.fixture(scope="module")
def empty_catalog(tmp_path_factory) -> Catalog:
    return Catalog.from_sources(tmp_path_factory.mktemp("no-runs"))


# --- every upload, whatever its mode, orientation or size -----------------------------------

def _scene(w: int = 64, h: int = 48) -> Image.Image:
    img = Image.new("RGB", (w, h), (30, 90, 200))
    ImageDraw.Draw(img).rectangle([0, 0, w // 2 - 1, h - 1], fill=(220, 40, 40))
    return img


def _write(tmp: Path, name: str, img: Image.Image, **save) -> Path:
    path = tmp / name
    img.save(path, **save)
    return path


MODES = {
    "RGB": lambda t: _write(t, "rgb.png", _scene()),
    "RGBA": lambda t: _write(t, "rgba.png", _scene().convert("RGBA")),
    "LA": lambda t: _write(t, "la.png", _scene().convert("LA")),
    "P": lambda t: _write(t, "p.png", _scene().convert("P", palette=Image.ADAPTIVE)),
    "P-transparent": lambda t: _write(t, "pt.gif", _scene().convert("P"), transparency=0),
    "CMYK": lambda t: _write(t, "cmyk.jpg", _scene().convert("CMYK"), quality=95),
    "L": lambda t: _write(t, "l.png", _scene().convert("L")),
    "1": lambda t: _write(t, "bw.png", _scene().convert("1")),
    "I;16": lambda t: _write(t, "i16.png", Image.fromarray(
        (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))),
    "tiny-1x1": lambda t: _write(t, "one.png", Image.new("RGB", (1, 1), (9, 9, 9))),
    "large-webp": lambda t: _write(t, "big.webp", _scene(1500, 1000)),
    "bmp": lambda t: _write(t, "img.bmp", _scene()),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_cifar10_handler_takes_every_image_mode(app_catalog, tmp_path, mode):
    path = MODES[mode](tmp_path)
    probs, frame, seen = cifar10(app_catalog, payload(path))
    assert_distribution(probs, TASKS["cifar10"].model_config().labels)
    assert frame["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    assert list(frame["class"]) == list(probs)
    assert seen.size == (256, 256) and seen.mode == "RGB"


def test_a_32px_photo_gets_the_softmax_of_its_normalised_pixels(app_catalog, tmp_path):
    """CIFAR-10 needs no resizing for a 32x32 RGB image: the answer is the model's softmax of
    (pixel / 255 - mean) / std, computed here from config.json's mean and std."""
    pixels = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    probs, _, _ = cifar10(app_catalog, payload(_write(tmp_path, "x.png", Image.fromarray(pixels))))
    loaded = app_catalog.get(None, "cifar10").loaded
    mean, std = (torch.tensor(loaded.info[k]).view(3, 1, 1) for k in ("mean", "std"))
    x = (torch.from_numpy(pixels).permute(2, 0, 1).float() / 255 - mean) / std
    with torch.no_grad():
        expected = torch.softmax(loaded.model(x[None]), 1)[0]
    assert list(probs) == list(loaded.info["labels"])
    assert list(probs.values()) == pytest.approx(expected.tolist(), abs=1e-5)


def test_other_input_forms_work_too(app_catalog, tmp_path):
    path = MODES["RGBA"](tmp_path)
    by_payload = cifar10(app_catalog, payload(path))[0]
    stored = payload(path)["path"]           # a path names an upload (anything else is refused)
    for form in (stored, Path(stored), path.read_bytes(), Image.open(path), np.asarray(Image.open(path).convert("RGB"))):
        probs = cifar10(app_catalog, form)[0]
        assert probs == pytest.approx(by_payload, abs=1e-6)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    img = read_image(payload(MODES["I;16"](tmp_path)))
    arr = np.asarray(img)
    assert img.mode == "L" and arr.min() == 0 and arr.max() == 255
    assert len(np.unique(arr)) > 200  # a ramp, not a clipped white image


def test_exif_orientation_is_applied(app_catalog, tmp_path):
    upright = _scene(64, 32)                               # red left half, blue right half
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6                                       # "rotate 90 CW to display"
    rotated = _write(tmp_path, "exif.jpg", stored, exif=exif.tobytes(), quality=95)
    plain = _write(tmp_path, "plain.jpg", upright, quality=95)
    img = read_image(payload(rotated))
    assert img.size == (64, 32)
    left, right = np.asarray(img)[:, :16].mean(axis=(0, 1)), np.asarray(img)[:, -16:].mean(axis=(0, 1))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]
    via_exif = cifar10(app_catalog, payload(rotated))[2]
    direct = cifar10(app_catalog, payload(plain))[2]
    assert np.abs(np.asarray(via_exif, float) - np.asarray(direct, float)).mean() < 4


@pytest.mark.parametrize("content", [b"", b"not an image at all" * 10, "truncated-png", "eps"])
def test_unreadable_upload_is_a_one_line_error_and_the_next_one_works(app_catalog, tmp_path, content):
    if content == "truncated-png":
        buf = io.BytesIO()
        _scene().save(buf, format="PNG")
        content = buf.getvalue()[:60]
    elif content == "eps":
        content = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    bad = tmp_path / "upload.png"
    bad.write_bytes(content)
    with pytest.raises(gr.Error) as err:
        cifar10(app_catalog, payload(bad))
    message = err.value.message
    assert message.startswith("Could not read the image") and "\n" not in message
    assert "Traceback" not in message
    probs = cifar10(app_catalog, payload(MODES["RGB"](tmp_path)))[0]
    assert_distribution(probs, TASKS["cifar10"].model_config().labels)


def test_no_image_gives_empty_outputs_not_an_error(app_catalog):
    for value in (None, {"path": None, "url": None}):
        label, frame, seen = cifar10(app_catalog, value)
        assert label is None and seen is None and frame["probability"].sum() == 0
    assert answers(app_catalog, "catsdogs", None) == (None, None, None, None, None)


def test_runs_are_chosen_by_key_never_by_path(app_catalog, tmp_path):
    image = payload(MODES["RGB"](tmp_path))
    for bad in ("../../etc/passwd", str(tmp_path), "mnist/tiny", "hub:someone/else"):
        with pytest.raises(gr.Error):
            cifar10(app_catalog, image, bad)


# --- MNIST: a drawing becomes MNIST-like input --------------------------------------------------

def _sketch(tmp: Path, strokes, size=400, width=28, colour=(0, 0, 0, 255)) -> dict:
    """A Sketchpad value as Gradio sends it: the composite is RGBA with a transparent background."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line(stroke, fill=colour, width=width, joint="curve")
    path = _write(tmp, "composite.png", img)
    return {"background": None, "layers": [payload(path)], "composite": payload(path)}


def _centre_of_mass(arr: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(arr.shape)
    total = arr.sum()
    return (ys * arr).sum() / total, (xs * arr).sum() / total


def test_a_stroke_becomes_a_centred_white_on_black_digit(tmp_path):
    # A small "7" drawn in the top-left corner of the canvas.
    sketch = _sketch(tmp_path, [[(40, 40), (140, 40), (80, 190)]])
    digit = to_mnist_digit(read_image(sketch["composite"]))
    arr = np.asarray(digit, dtype=float)
    assert digit.size == (28, 28) and digit.mode == "L"
    assert arr.max() >= 250                                   # the digit is bright
    rows, cols = np.flatnonzero(arr.any(axis=1)), np.flatnonzero(arr.any(axis=0))
    assert np.ptp(rows) + 1 <= 21 and np.ptp(cols) + 1 <= 21      # scaled into the 20x20 box (+1 px of filter)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 >= 19              # ...and it fills it
    frame = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    assert frame.max() == 0                                   # background is black
    assert arr[:3, :3].max() == arr[-3:, :3].max() == arr[-3:, -3:].max() == 0
    assert (arr == 0).mean() > 0.6
    cy, cx = _centre_of_mass(arr)
    assert abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75      # centred by mass, as MNIST


def test_a_real_mnist_digit_passes_through_unchanged():
    original = np.asarray(Image.open(MNIST_DIGIT), dtype=float)
    processed = np.asarray(to_mnist_digit(read_image(payload(MNIST_DIGIT))), dtype=float)
    assert np.abs(original - processed).mean() < 1.0


def test_dark_on_light_upload_is_inverted(tmp_path):
    img = Image.new("RGB", (120, 160), (245, 240, 230))          # paper
    ImageDraw.Draw(img).line([(60, 20), (60, 140)], fill=(20, 20, 40), width=12)
    arr = np.asarray(to_mnist_digit(read_image(payload(_write(tmp_path, "photo.jpg", img)))), float)
    assert arr[0, 0] == 0 and arr.max() >= 200
    assert arr[4:24, 13:15].mean() > 200 and arr[:, :10].max() == 0                           # the vertical bar, now white, centred


def test_classify_digit_shows_the_processed_input(app_catalog, tmp_path):
    seen, probs, frame = answers(app_catalog, "mnist", _sketch(tmp_path, [[(200, 60), (210, 340)]])["composite"])
    assert_distribution(probs, [str(d) for d in range(10)])
    assert frame["probability"].sum() == pytest.approx(1.0, abs=1e-4)
    view = np.asarray(seen)
    assert seen.size == (256, 256) and view[0, 0] == 0 and view.max() >= 200   # white on black, 32x32 upscaled
    assert np.array_equal(view[::8, ::8].repeat(8, 0).repeat(8, 1), view)      # nearest-neighbour of 32x32
    upload = answers(app_catalog, "mnist", payload(MNIST_DIGIT))
    assert_distribution(upload[1], [str(d) for d in range(10)])


def test_an_empty_sketch_gives_empty_outputs(app_catalog, tmp_path):
    from ui.inputs import browser_event
    blank = _sketch(tmp_path, [])["composite"]
    with browser_event():                     # the page's canvas, nothing drawn yet or just cleared
        probs, _, captions, last, _ = classify_tab.respond(app_catalog, TASKS["mnist"], blank, (), blank_is_empty=True)
    assert probs is None and captions == [""] and last is blank
    assert classify_tab.model_input(app_catalog, "mnist", blank) is None    # and nothing shown as its input
    assert answers(app_catalog, "mnist", None)[1] is None
    if app_catalog.default_key("mnist") is not None:   # anywhere else a blank drawing is told why
        with pytest.raises(gr.Error, match="no digit found"):
            answers(app_catalog, "mnist", blank)


def test_a_photo_of_two_digits_is_refused_with_the_reason_not_classified(app_catalog, tmp_path):
    """Issue 24.1: marks that are not one digit get a one-line reason, never a confident answer,
    from the classify endpoints and from Grad-CAM alike (models.digits.NotADigit)."""
    from tests.datagen import digit_ink, photographed
    from ui.why import gradcam
    if app_catalog.default_key("mnist") is None:
        pytest.skip("no MNIST run")
    two = np.maximum(digit_ink(3, 600, offset=(-0.3, 0.0)), digit_ink(7, 600, offset=(0.3, 0.1)))
    photo = payload(_write(tmp_path, "two.jpg", photographed(two, 1)))
    for blank_is_empty in (False, True):       # an upload, and the page's drawing
        with pytest.raises(gr.Error, match="Could not classify the image: several separate marks: "):
            answers(app_catalog, "mnist", photo, blank_is_empty=blank_is_empty)
    heat, caption = gradcam.explain(app_catalog, photo, None, task="mnist")
    assert heat is None and caption.startswith("Nothing to explain: several separate marks")
    one = payload(_write(tmp_path, "one.jpg", photographed(digit_ink(3, 600, offset=(0.2, -0.1), angle=6), 2)))
    assert_distribution(answers(app_catalog, "mnist", one)[1], [str(d) for d in range(10)])


# --- no models: every tab says how to train one ---------------------------------------------

def test_missing_models_name_the_command_that_trains_them(empty_catalog, tmp_path):
    image = payload(MODES["RGB"](tmp_path))
    for task in TASKS:
        commands = [TASKS[task].train_command(variant) for variant in TASKS[task].variants]
        with pytest.raises(gr.Error) as err:
            answers(empty_catalog, task, image)
        assert all(c in err.value.message for c in commands[:len(classify_tab.columns(TASKS[task]))]), err.value.message
        text = classify_tab.notice(empty_catalog, TASKS[task])
        assert all(f"`{c}`" in text for c in commands)
    assert TASKS["catsdogs"].train_command("random-erasing") == "python -m training.train --task catsdogs --random-erasing"
    assert missing_model_message("cifar10") == ("No CIFAR-10 model is available. "
                                                "Train one with: python -m training.train --task cifar10")


def test_one_missing_cats_dogs_model_still_shows_the_other(app_catalog, tmp_path):
    only_baseline = Catalog([e for e in app_catalog.entries_ if e.variant == "baseline"])
    seen, base, _, erasing, why = answers(only_baseline, "catsdogs", payload(ASSETS / "cat_drawing.png"))
    assert_distribution(base, ("cat", "dog"))
    assert erasing is None and seen is not None
    assert TASKS["catsdogs"].train_command("random-erasing") in why


def test_tabs_without_models_still_work(empty_catalog):
    table, text = architecture_tab.architecture(empty_catalog, "CIFAR-10: vgg19_bn_32")
    assert "20,297,674" in text
    items, _ = augment_tab.augment_grid(empty_catalog, "MNIST", "mnist 3", None, 0, 3)
    assert len(items) == 4
    acc, loss = curves_tab.curves(empty_catalog, [])
    assert acc.empty and loss.empty
    frame, text = curves_tab.erasing_comparison(empty_catalog)
    assert frame.empty and TASKS["catsdogs"].train_command("random-erasing") in text


# --- run discovery and the catalog --------------------------------------------------------------

def _fake_run(root: Path, folder: str, name: str, task: str, variant: str | None, created: str,
              weights: bool = True) -> Path:
    run = root / folder / name
    run.mkdir(parents=True)
    config = {"task": task, "run_name": name, "created": created}
    if variant:
        config["variant"] = variant
    (run / "config.json").write_text(json.dumps(config))
    if weights:
        (run / "model.safetensors").write_bytes(b"x")
    return run


def test_discovery_picks_the_newest_complete_run_per_task_and_variant(tmp_path):
    _fake_run(tmp_path, "cifar10", "old", "cifar10", "baseline", "2026-01-01T00:00:00+00:00")
    _fake_run(tmp_path, "cifar10", "new", "cifar10", "baseline", "2026-02-01T00:00:00+00:00")
    _fake_run(tmp_path, "cifar10", "newer-unfinished", "cifar10", "baseline", "2026-03-01T00:00:00+00:00",
              weights=False)
    _fake_run(tmp_path, "catsdogs", "a", "catsdogs", "baseline", "2026-01-01T00:00:00+00:00")
    _fake_run(tmp_path, "catsdogs-re", "b", "catsdogs", "random-erasing", "2026-01-02T00:00:00+00:00")
    _fake_run(tmp_path, "mnist", "no-variant", "mnist", None, "2026-01-03T00:00:00+00:00")   # older config: baseline
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x").mkdir()
    refs = discover_runs(tmp_path)
    assert [r.key for r in refs][0] == "cifar10/new"
    newest = {}
    for ref in refs:                        # newest first: the first of each (task, variant)
        newest.setdefault((ref.task, ref.variant), ref)
    assert {k: r.key for k, r in newest.items()} == {("cifar10", "baseline"): "cifar10/new",
                                                     ("catsdogs", "baseline"): "catsdogs/a",
                                                     ("catsdogs", "random-erasing"): "catsdogs-re/b",
                                                     ("mnist", "baseline"): "mnist/no-variant"}
    assert discover_runs(tmp_path / "missing") == []


def test_a_broken_newest_run_is_reported_and_the_previous_one_serves(app_runs, tmp_path):
    good = tmp_path / "cifar10" / "good"
    shutil.copytree(app_runs / "cifar10" / "tiny", good, ignore=shutil.ignore_patterns("checkpoint.pt", "tb"))
    broken = tmp_path / "cifar10" / "broken"
    broken.mkdir()
    config = json.loads((good / "config.json").read_text())
    config["created"] = "2999-01-01T00:00:00+00:00"
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)  # not safetensors
    catalog = Catalog.from_sources(tmp_path, [UNREACHABLE_HUB_REPO])
    assert catalog.default_key("cifar10") == "cifar10/good"
    status = catalog.status_markdown()
    assert "cifar10/broken" in status and "unavailable: " in status and "model.safetensors" in status
    assert f"Hub repo `{UNREACHABLE_HUB_REPO}`" in status
    with pytest.raises(gr.Error, match="unavailable"):
        cifar10(catalog, payload(MODES["RGB"](tmp_path)), "cifar10/broken")


def test_hub_ids_from_the_environment():
    env = {"CNN_STUDIO_HUB_MODELS": "me/cifar10, me/mnist@v1  me/catsdogs,,"}
    no_readme = Path("/nonexistent/README.md")
    assert hub_models(env, no_readme) == ["me/cifar10", "me/mnist@v1", "me/catsdogs"]
    assert hub_models({}, no_readme) == []


# That the app never imports training/ is checked in a fresh interpreter by tests/test_space.py
# (test_importing_app_builds_and_launches_nothing_and_app_demo_is_the_blocks).


# --- the other tabs, from the tiny runs' files ----------------------------------------------

def test_augmentation_uses_the_training_transforms_per_sample(app_catalog):
    plain, _ = augment_tab.augment_grid(app_catalog, "Cats vs Dogs", "cat drawing", None, seed=3, copies=8)
    erased, text = augment_tab.augment_grid(app_catalog, "Cats vs Dogs + Random Erasing", "cat drawing", None,
                                            seed=3, copies=8)
    assert "Random Erasing (p=0.5" in text and len(plain) == len(erased) == 9
    a = [np.asarray(img, dtype=int) for img, _ in plain[1:]]
    b = [np.asarray(img, dtype=int) for img, _ in erased[1:]]
    assert len({x.tobytes() for x in a}) > 1                 # each copy its own crop and flip
    same = [np.array_equal(x, y) for x, y in zip(a, b)]
    assert any(same) and not all(same)                       # erasing (p=0.5) only on some copies...
    for x, y in zip(a, b):                                   # ...as one rectangle, crops and flips shared
        diff = (x != y).any(axis=2)
        if diff.any():
            rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
            box = diff[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            assert box.mean() > 0.9 and 0.02 * 0.8 <= box.size / diff.size <= 0.4 * 1.2
    mnist, text = augment_tab.augment_grid(app_catalog, "MNIST", "mnist 3", None, seed=0, copies=2)
    assert mnist[0][0].size == (160, 160) and "padding" in text  # 32x32 stored, shown 5x
    with pytest.raises(gr.Error):
        augment_tab.augment_grid(app_catalog, "MNIST", "../../etc/passwd", None)


def test_architecture_table_totals(app_catalog):
    expected = {"CIFAR-10": 20_297_674, "MNIST": 20_296_522, "Cats vs Dogs": 23_510_081,
                "Your images": 20_293_057}     # VGG19-BN, one logit for the two class folders of its run
    for name in architecture_tab.model_configs(app_catalog):
        table, text = architecture_tab.architecture(app_catalog, name, 2)
        total = expected[name.split(":")[0]]
        assert f"{total:,}" in text and "multiply-adds" in text
        assert list(table.columns) == ["layer", "output shape", "parameters", "mult-adds"]
        counted = sum(int(v.replace(",", "")) for v in table["parameters"] if v != "--")
        assert counted == total
    table, _ = architecture_tab.architecture(app_catalog, "Cats vs Dogs: resnet50", 1)
    assert table["output shape"].iloc[-1] == "1 x 1"          # one logit
    assert table["output shape"].iloc[0] == "1 x 64 x 112 x 112"  # at the real 224x224 input


def test_curves_and_erasing_comparison_come_from_the_run_files(app_catalog, app_runs):
    keys = [e.key for e in app_catalog.with_files() if curves_tab.has_history(e)]
    assert "cifar10/tiny" in keys
    acc, loss = curves_tab.curves(app_catalog, ["cifar10/tiny"])
    history = json.loads((app_runs / "cifar10" / "tiny" / "history.json").read_text())
    assert sorted(acc.loc[acc.series == "cifar10/tiny test", "value"]) == sorted(r["val_accuracy"] for r in history)
    assert sorted(loss.loc[loss.series == "cifar10/tiny train", "value"]) == sorted(r["train_loss"] for r in history)
    frame, text = curves_tab.erasing_comparison(app_catalog)
    for folder, variant in (("catsdogs", "baseline"), ("catsdogs-re", "Random Erasing")):
        metrics = json.loads((app_runs / folder / "tiny" / "metrics.json").read_text())
        assert frame.loc[frame.run == f"{folder}/tiny", "accuracy"].item() == metrics["accuracy"]
        assert frame.loc[frame.run == f"{folder}/tiny", "variant"].item() == variant
    assert f"{metrics['accuracy']:.1%}" in text
    with pytest.raises(gr.Error):
        curves_tab.curves(app_catalog, ["/etc"])


def test_model_card_is_rendered_without_front_matter(app_catalog):
    keys = [e.key for e in app_catalog.with_files() if cards_tab.has_card(e)]
    assert "cifar10/tiny" in keys
    text, curves = cards_tab.model_card(app_catalog, "cifar10/tiny")
    assert not text.startswith("---") and "model-index" not in text
    assert text.lstrip().startswith("#") and "CIFAR-10" in text
    assert curves is not None and curves.size[0] > 100
    with pytest.raises(gr.Error):
        cards_tab.model_card(app_catalog, "../cifar10")


def test_models_are_in_eval_mode_and_inference_is_deterministic(app_catalog, tmp_path):
    for entry in app_catalog.entries(available_only=True):
        if entry.loaded is not None:
            assert not entry.loaded.model.training
    image = payload(MODES["RGB"](tmp_path))
    first = cifar10(app_catalog, image)[0]
    assert cifar10(app_catalog, image)[0] == first
    assert not torch.is_inference_mode_enabled()


# --- issue 24: how good the model is, one message, the split's own name --------------------------

def test_a_hub_repos_quality_read_before_it_loaded_is_read_again_once_it_has(app_runs):
    """A Hub repo's entry has no files until it loads; a list drawn meanwhile must not fix its quality as unknown."""
    from ui.catalog import Catalog, ModelEntry
    catalog = Catalog.from_sources(None)
    entry = ModelEntry(key="hub:me/mnist", source=str(app_runs / "mnist" / "tiny"), kind="hub")
    assert entry.quality == ""                           # before: nothing to read
    catalog._load(entry)
    assert entry.quality.endswith("accuracy, partial run"), entry.quality


def test_every_model_list_and_answer_says_how_good_the_model_is(app_catalog, app_runs, tmp_path):
    """Item 5: an 11% Train-tab run and an 82% run no longer look alike: the dropdowns, the Models
    panel and the caption beside each answer give the accuracy from metrics.json, "partial run"
    when config.json says it saw a subset (the tiny runs do: --limit-train/--limit-val)."""
    entry = app_catalog.entry("cifar10/tiny")
    metrics = json.loads((app_runs / "cifar10" / "tiny" / "metrics.json").read_text())
    quality = f"{metrics['accuracy']:.1%} {metrics['split']} accuracy, partial run"
    assert entry.label == f"cifar10/tiny (baseline) · {quality}"
    assert ("cifar10/tiny (baseline) · " + quality, "cifar10/tiny") in app_catalog.choices("cifar10")
    assert f"| {quality} |" in app_catalog.status_markdown()
    answer = classify_tab.classify(app_catalog, "cifar10", payload(MODES["RGB"](tmp_path))).answers[0]
    assert classify_tab.caption(answer).endswith(f", by cifar10/tiny ({quality})")
    full = tmp_path / "runs" / "cifar10" / "full"             # the same run, as if trained on every image
    shutil.copytree(app_runs / "cifar10" / "tiny", full, ignore=shutil.ignore_patterns("checkpoint.pt", "tb"))
    config = json.loads((full / "config.json").read_text())
    (full / "config.json").write_text(json.dumps({**config, "limit_train": None, "limit_val": None}))
    assert Catalog.from_sources(tmp_path / "runs").entry("cifar10/full").quality == quality.removesuffix(", partial run")


def test_a_small_probability_is_shown_to_the_hundredth_of_a_percent(app_catalog):
    """Item 9: P(dog) read as a bare "0": the caption gives both classes of a two-class model to 0.01%."""
    entry = app_catalog.entry(app_catalog.default_key("catsdogs"))
    text = classify_tab.caption(classify_tab.Answer(entry, {"cat": 0.99997, "dog": 0.00003}), " for the upload")
    assert text.startswith("cat >99.99%, dog <0.01% for the upload, by catsdogs/tiny (")
    assert [classify_tab.percent(p) for p in (0.0, 0.1234, 1.0)] == ["0.00%", "12.34%", "100.00%"]


def test_a_refusal_in_the_page_is_one_warning_and_answers_that_say_why(app_catalog, tmp_path):
    """Item 8: in the page an unreadable upload is one warning (no error marking every output red),
    empty answers whose caption says why, and no input kept (the page then clears the upload); an
    API caller gets the error."""
    from ui.inputs import browser_event
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with browser_event(), pytest.warns(UserWarning, match="^Could not read the image: not a readable image"):
        label, frame, captions, last, _ = classify_tab.respond(app_catalog, TASKS["cifar10"], payload(bad), ())
    assert label is None and last is None and frame["probability"].sum() == 0
    assert captions[0].startswith("Could not read the image") and "\n" not in captions[0]
    with pytest.raises(gr.Error) as err:
        classify_tab.respond(app_catalog, TASKS["cifar10"], payload(bad), ())
    assert err.value.message == captions[0]


def test_examples_and_accuracy_name_the_split_as_the_run_does(app_catalog, app_runs):
    """Item 15: one name for the held-out images on a page, the one the run's metrics.json uses;
    item 10: each example captioned with its class and its place in that split."""
    for task, folder in (("cifar10", "cifar10"), ("catsdogs", "catsdogs")):
        split = json.loads((app_runs / folder / "tiny" / "metrics.json").read_text())["split"]
        heading, items = classify_tab.examples(app_catalog, TASKS[task])
        assert heading == f"**Examples:** {split} images of `{folder}/tiny`"
        assert f" {split} accuracy" in app_catalog.entry(f"{folder}/tiny").quality
        rows = json.loads((app_runs / folder / "tiny" / "examples" / "index.json").read_text())
        assert [caption for _, caption in items] == [f"{row['label']} #{row['index']}" for row in rows][:10]
        assert len({caption for _, caption in items}) == len(items)          # told apart
    heading, items = classify_tab.examples(Catalog([]), TASKS["mnist"])      # no run yet: the record's assets
    assert heading == "**Examples**" and "mnist 3" in [caption for _, caption in items]


def test_examples_are_served_from_gradios_cache_wherever_the_runs_folder_is(app_catalog, app_runs):
    """Gradio serves only files under the working directory, the temp folder or its cache: an example
    handed out as a path into the runs folder broke every classify tab of `--runs /data/runs`
    (InvalidPathError). The examples are copies in the cache, with the run's own pixels."""
    from gradio.utils import get_upload_folder
    from PIL import Image
    cache = Path(get_upload_folder()).resolve()
    for task in ("cifar10", "mnist"):
        _, items = classify_tab.examples(app_catalog, TASKS[task])
        rows = json.loads((app_runs / task / "tiny" / "examples" / "index.json").read_text())
        assert items
        for (path, _), row in zip(items, rows):
            assert Path(path).resolve().is_relative_to(cache), path
            original = app_runs / task / "tiny" / "examples" / Path(row["file"]).name
            assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(Image.open(original).convert("RGB")))


def test_the_hub_panel_says_in_one_line_that_an_uncached_repo_cannot_be_loaded_offline(empty_catalog):
    """Item 13: offline, a repo not in the Hub cache is one warning a person understands, and the
    Models table stays as it was (no error badge); an API caller gets the full reason."""
    from ui import hub_panel
    from ui.inputs import browser_event
    repo = "cnn-studio-tests/not-cached"
    with browser_event(), pytest.warns(UserWarning) as warned:
        table = hub_panel.load_hub_model(empty_catalog, f" {repo} ", progress=lambda *a, **k: None)
    assert table == empty_catalog.status_markdown()
    assert [str(w.message) for w in warned] == [
        f"{repo} is not in the local Hub cache, and the Hub cannot be reached (offline or no network)"]
    with pytest.raises(gr.Error) as err:
        hub_panel.load_hub_model(empty_catalog, repo, progress=lambda *a, **k: None)
    assert err.value.message.startswith(f"repo_id: hub:{repo} is unavailable: {repo}: not in the local Hub cache")
