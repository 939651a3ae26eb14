"""One preprocessing per task (issue 15.1): the same image sent through every endpoint that
classifies it gets the same class and probability, whether it is classified, explained with
Grad-CAM (in the classify tab's panel or in See why) or occluded with an empty box.

Black-on-white digits are the case that once disagreed: See why fed them to the MNIST model
raw, while the MNIST tab inverted, cropped and centred them. Driven through gradio_client on
the shared launched app (tests/conftest.py: app_server).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from ui.why.gradcam import PREDICTED

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CAPTION = re.compile(r"Grad-CAM for \*\*(?P<label>[^*]+)\*\* \(predicted; P = (?P<p>[\d.]+)%\)")
CAPTION_ROUNDING = 0.0005 + 1e-9          # captions show P to 0.1%


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client
    return Client(app_server[1], verbose=False, download_files=False)


def top(label: dict) -> tuple[str, float]:
    best = max(label["confidences"], key=lambda c: c["confidence"])
    return best["label"], best["confidence"]


def explained(caption: str) -> tuple[str, float]:
    found = CAPTION.search(caption)
    assert found, caption
    return found["label"], float(found["p"]) / 100


def assert_same(reference: tuple[str, float], other: tuple[str, float], where: str) -> None:
    assert other[0] == reference[0], f"{where}: class {other[0]} where the classify tab says {reference[0]}"
    assert abs(other[1] - reference[1]) <= CAPTION_ROUNDING, f"{where}: P {other[1]} vs {reference[1]}"


def black_on_white_digit(tmp_path: Path) -> Path:
    """An MNIST test digit as someone would write it: dark ink on white paper, larger, off-centre."""
    digit = ImageOps.invert(Image.open(ASSETS / "mnist_3.png").convert("L")).resize((84, 84), Image.BILINEAR)
    paper = Image.new("L", (160, 140), 255)
    paper.paste(digit, (12, 30))
    path = tmp_path / "written_3.png"
    paper.save(path)
    return path


def test_a_digit_gets_the_same_answer_from_every_endpoint(client, app_catalog, tmp_path):
    from gradio_client import handle_file
    key = app_catalog.default_key("mnist")
    image = black_on_white_digit(tmp_path)
    drawing = {"background": None, "layers": [], "composite": handle_file(image)}
    reference = top(client.predict(handle_file(image), None, api_name="/classify_digit_image")[0])
    assert_same(reference, top(client.predict(drawing, None, api_name="/classify_digit")[0]), "classify_digit")
    _, caption = client.predict(handle_file(image), None, PREDICTED, 0.5, api_name="/gradcam_mnist")
    assert_same(reference, explained(caption), "gradcam_mnist")
    _, caption = client.predict(handle_file(image), key, PREDICTED, api_name="/gradcam")
    assert_same(reference, explained(caption), "See why -> Grad-CAM")


def test_a_photo_gets_the_same_answer_from_every_endpoint(client, app_catalog):
    from gradio_client import handle_file
    boat = handle_file(ASSETS / "sample_boat.png")
    reference = top(client.predict(boat, None, api_name="/classify_cifar10")[0])
    _, caption = client.predict(boat, None, PREDICTED, 0.5, api_name="/gradcam_cifar10")
    assert_same(reference, explained(caption), "gradcam_cifar10")
    _, caption = client.predict(boat, app_catalog.default_key("cifar10"), PREDICTED, api_name="/gradcam")
    assert_same(reference, explained(caption), "See why -> Grad-CAM (CIFAR-10)")

    cat = handle_file(ASSETS / "cat_drawing.png")
    baseline, _, erasing, _ = client.predict(cat, None, None, api_name="/classify_catdog")
    for label, panel, variant in ((baseline, "/gradcam_catsdogs", "baseline"),
                                  (erasing, "/gradcam_catsdogs_re", "random-erasing")):
        reference = top(label)
        _, caption = client.predict(cat, None, PREDICTED, 0.5, api_name=panel)
        assert_same(reference, explained(caption), panel)
        _, caption = client.predict(cat, app_catalog.default_key("catsdogs", variant), PREDICTED, api_name="/gradcam")
        assert_same(reference, explained(caption), f"See why -> Grad-CAM ({variant})")
    # The occlusion playground's "without the box" column is the same P(dog).
    _, table = client.predict(cat, None, None, 112, 112, 56, "mean", api_name="/occlusion_probe")
    rows = {row[0]: row[1] for row in table["data"]}
    for name, label in (("baseline", baseline), ("Random Erasing", erasing)):
        p_dog = next(c["confidence"] for c in label["confidences"] if c["label"] == "dog")
        assert rows[name] == pytest.approx(p_dog, abs=0.00005 + 1e-9)      # the table rounds to 4 places
