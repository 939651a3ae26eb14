"""The contract of a task record (issue 21): every registered task, and a throwaway one registered
here in-process with an architecture of its own, goes the same way end to end:

    tiny train (the real CLI) -> release -> card (parsed by huggingface_hub, its data named truthfully)
    -> served by the app and classified through gradio_client at the record's endpoint
    -> the card's Hub code, in a fresh venv without the project, gives predict_probs's answer (1e-5)
       on 8-bit, 16-bit, RGBA and palette images.

Nothing below names a task: what a record says is all the app, the card and the Hub code get.
"""
from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from models.artifact import load_model
from ui.common import VIEW_SIZE
from tests.conftest import launch_app, train_tiny
from tests.test_hub import assert_hub_code_gives_the_apps_answer

# A small architecture of the user's own, in a module of its own: registered when imported, as
# docs/adding-a-task.md shows. The Hub code ships every registered architecture's module.
THROWAWAY_ARCH = '''
from torch import nn

from models.registry import Architecture, register_architecture


class TinyNet(nn.Module):
    """Two conv blocks and a linear head: a few thousand parameters."""

    def __init__(self, in_channels: int, outputs: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, outputs)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


register_architecture("tinynet", Architecture(
    build=lambda cfg: TinyNet(cfg.in_channels, cfg.num_outputs), title="TinyNet",
    description="two conv blocks, global pooling, a linear head", gradcam_layer="features.4",
    gradcam_grid="the second conv block"))
'''


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory):
    """A task and an architecture no product file names, registered in this process, then removed."""
    from models import tasks
    from models.registry import ARCHITECTURES
    from models.tasks import CIFAR_RECIPE, IMAGE_FOLDER, Dataset, Task
    folder = tmp_path_factory.mktemp("throwaway-code")
    (folder / "throwaway_arch.py").write_text(textwrap.dedent(THROWAWAY_ARCH))
    sys.path.insert(0, str(folder))
    importlib.import_module("throwaway_arch")
    task = tasks.register(Task(
        name="shapes", title="Shapes", architecture="tinynet", input_size=24, resize_size=28,
        labels=("circle", "square", "triangle"), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
        dataset=Dataset(name="a local image folder", source=IMAGE_FOLDER, train_split="train", val_split="val"),
        recipe={**CIFAR_RECIPE, "augment": {"crop": 24, "padding": 2, "flip": True, "random_erasing": None}},
        quick={"epochs": 1}, description="Draw a circle, a square or a triangle.",
        intended_use="Telling three drawn shapes apart.", api_name="classify_shapes"))
    yield task
    tasks.TASKS.pop(task.name)
    ARCHITECTURES.pop("tinynet")
    sys.path.remove(str(folder))
    sys.modules.pop("throwaway_arch", None)


def write_shapes(root: Path, per_class: int = 6) -> Path:
    from PIL import ImageDraw
    for split, n in (("train", per_class), ("val", 3)):
        for k, shape in enumerate(("circle", "square", "triangle")):
            (root / split / shape).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.new("RGB", (40 + i, 36), (240, 240, 240))
                d, box = ImageDraw.Draw(img), (8 + i % 3, 6, 30, 28)
                [d.ellipse, d.rectangle, lambda b, **kw: d.polygon([(b[0], b[3]), (b[2], b[3]), (19, b[1])], **kw)][k](
                    box, fill=(20 * k, 60, 200))
                img.save(root / split / shape / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def contract_runs(tmp_path_factory, throwaway, mnist_dir, cifar10_dir, catsdogs_dir):
    """runs/<task>/tiny for every registered task (the throwaway's too), trained by the real CLI."""
    import torchvision.datasets.cifar as cifar
    runs = tmp_path_factory.mktemp("contract-runs")
    shapes = write_shapes(tmp_path_factory.mktemp("shapes"))
    data = {"mnist": mnist_dir, "cifar10": cifar10_dir, "catsdogs": catsdogs_dir, "folder": shapes, "shapes": shapes}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar, "check_integrity", lambda *a, **k: True)   # generated CIFAR batches (conftest says why)
        for name in importlib.import_module("models.tasks").TASKS:
            extra = ("--arch", "vgg19_bn_32") if name == "folder" else ()     # the 32 px alternative: quick
            train_tiny(runs / name / "tiny", name, data[name], *extra, limit_train=16, limit_val=8, batch_size=8)
    return runs


def images(folder: Path) -> dict[str, Path]:
    """One picture, a dark 7 on light paper (a digit for MNIST, a shape for the others), in the forms
    the app accepts: 8-bit RGB, 16-bit greyscale, RGBA with transparent paper, a palette."""
    from PIL import ImageDraw
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (64, 56), (235, 232, 225))
    ImageDraw.Draw(img).line([(18, 12), (46, 12), (26, 46)], fill=(25, 25, 40), width=6)
    img.save(folder / "rgb8.png")
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    Image.fromarray((grey * 257).astype(np.uint16)).save(folder / "grey16.png")
    rgba = np.dstack([np.asarray(img), np.where(grey < 128, 255, 0).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    img.quantize(8).save(folder / "palette.png")
    return {p.name: p for p in sorted(folder.iterdir())}


def test_every_task_record_keeps_the_contract(contract_runs, tmp_path):
    from gradio_client import Client, handle_file

    from app import build_demo  # noqa: F401  (the app is built from the records, below)
    from models.tasks import TASKS
    from ui.catalog import Catalog
    pictures = images(tmp_path / "images")
    demo, url = launch_app(Catalog.from_sources(contract_runs))
    try:
        client = Client(url, verbose=False)
        for name, task in TASKS.items():
            run = contract_runs / name / "tiny"
            loaded = load_model(run)
            check_card(run, task)
            answer = client.predict(handle_file(pictures["rgb8.png"]), api_name=f"/{task.api_name}")
            label = answer[0]          # outputs: each model's top classes and bars
            assert label["label"] in loaded.config.labels, (name, answer)
            seen = client.predict(handle_file(pictures["rgb8.png"]),
                                  api_name=f"/model_input_{task.api_name.removeprefix('classify_')}")
            assert Image.open(seen).size == (VIEW_SIZE, VIEW_SIZE), name     # what the model sees, upscaled
            assert_hub_code_gives_the_apps_answer(run, pictures, tmp_path / name)
    finally:
        demo.close()


def check_card(run: Path, task) -> None:
    """Parsed by huggingface_hub; its data is what the run read, never a public dataset it did not."""
    card = ModelCard.load(run / "README.md")
    config = json.loads((run / "config.json").read_text())
    dataset = config["dataset"]
    if dataset["hub_id"]:
        assert card.data.datasets == [dataset["hub_id"]], task.name
    else:       # the user's own images: no public dataset in the metadata, none named in the text
        assert not card.data.datasets and not card.data.eval_results, task.name
        assert "a local image folder" in card.text, task.name
        assert not (task.dataset.hub_id and task.dataset.hub_id in card.text), task.name
    from models.registry import ARCHITECTURES
    assert ARCHITECTURES[config["architecture"]].title in card.text, task.name
