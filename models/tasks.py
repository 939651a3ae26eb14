"""One record per task: everything CNN Studio knows about a task, in one place.

A `Task` names its architecture (models/registry.py) and input, its labels (or "read from the
class folders"), its dataset (how training reads it, its splits, its public name, Hub id and
citation, or "a local image folder"), its recipe with the quick preset's changes, its variants
(baseline, Random Erasing), the image preparation the app applies before the model's own
preprocessing, and the words the app and the card show. Everything else is derived from
`TASKS`: the training CLI's --task choices, the data readers, the app's tabs and dropdowns and
augmentation recipes, the card, the Hub code and the Space. A new task is one `register(Task(...))`
(docs/adding-a-task.md).

Why these recipes:
- cifar10 (VGG19-BN, 40 epochs): SGD with Nesterov momentum and weight decay 5e-4, the standard
  for VGG on CIFAR; a one-cycle schedule reaches in 40 epochs what a step schedule needs ~150 for;
  random crop with 4 px zero padding and horizontal flip; label smoothing 0.1. Aim: 94%.
- mnist (VGG19-BN, one input channel, digits resized 28 -> 32): Adam with cross-entropy, as the
  homework asks, on a one-cycle schedule; random crop with 2 px padding, no flip (a flipped digit
  is another digit or none). Aim: 99.6%.
- catsdogs and folder (ResNet50, 224 px, images kept at 256 px): SGD with Nesterov momentum and a
  cosine schedule with warm-up; random 224 crop + flip for training, centre crop for evaluation.
  `--random-erasing` adds Random Erasing with the paper's defaults (Zhong et al. 2017), to training
  batches only, after normalisation.
`--preset quick` changes only what `quick` lists: a run a 2-core CPU can afford.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

from models.registry import ModelConfig


class Variant(StrEnum):
    """The baseline, or the same recipe with Random Erasing (config.json "variant")."""
    BASELINE = "baseline"
    RANDOM_ERASING = "random-erasing"

    @property
    def title(self) -> str:
        return "Random Erasing" if self is Variant.RANDOM_ERASING else "baseline"

    def task_folder(self, task: str) -> str:
        """The runs/ folder of this variant of `task`: runs/<task>[-re]/<run-name>/."""
        return f"{task}{_RE_SUFFIX}" if self is Variant.RANDOM_ERASING else task

    @classmethod
    def from_folder(cls, folder: str) -> tuple[str, "Variant"]:
        """(task, variant) of a runs/ folder name, the inverse of `task_folder`."""
        task = folder.removesuffix(_RE_SUFFIX)
        return task, cls.RANDOM_ERASING if task != folder else cls.BASELINE

    @classmethod
    def of(cls, config: dict) -> "Variant":
        """The variant config.json records (none recorded: a baseline)."""
        value = config.get("variant")
        try:
            return cls(value) if value else cls.BASELINE
        except ValueError:
            raise ValueError(f"config.json: unknown variant {value!r}; "
                             f"expected {' or '.join(v.value for v in cls)}") from None


_RE_SUFFIX = "-re"
BASELINE, RANDOM_ERASING = Variant.BASELINE, Variant.RANDOM_ERASING
# Random Erasing with the paper's defaults (Zhong et al. 2017), as `--random-erasing` adds it.
RANDOM_ERASING_DEFAULTS: dict = {"p": 0.5, "scale": [0.02, 0.4], "ratio": [0.3, 3.3], "value": "random"}
RANDOM_ERASING_CITATION = """@inproceedings{zhong2020randomerasing,
  title     = {Random Erasing Data Augmentation},
  author    = {Zhong, Zhun and Zheng, Liang and Kang, Guoliang and Li, Shaozi and Yang, Yi},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {34},
  number    = {7},
  pages     = {13001--13008},
  year      = {2020},
  url       = {https://arxiv.org/abs/1708.04896}
}"""
PRESETS = ("full", "quick")
RUNS_DIR = "runs"                            # runs/<task>[-re]/<run-name>/
HUB_MODELS_ENV = "CNN_STUDIO_HUB_MODELS"     # space- or comma-separated Hub repo ids (an override of the Space's README)


@dataclass(frozen=True)
class Dataset:
    name: str                      # as cards and the app name it
    source: str                    # how training reads it: a torchvision.datasets class, or "image_folder"
    train_split: str = "train"
    val_split: str = "test"
    hub_id: str | None = None      # the same images on the Hub (card metadata); None for your own images
    hub_config: str | None = None  # that Hub dataset's config (model-index dataset.config)
    options: dict = field(default_factory=dict)   # extra keyword arguments of the torchvision class
    layout: str = ""               # what --data-dir holds, for messages
    citation: str = ""             # BibTeX
    url: str = ""

    @property
    def local(self) -> bool:
        return self.source == IMAGE_FOLDER


IMAGE_FOLDER = "image_folder"
IMAGE_FOLDER_LAYOUT = "DIR/<class>/* (a seeded validation split is made), or DIR/train/<class>/* and DIR/val/<class>/*"
LOCAL_FOLDER = Dataset(name="a local image folder", source=IMAGE_FOLDER, train_split="train", val_split="val",
                       layout=IMAGE_FOLDER_LAYOUT)


@dataclass(frozen=True)
class Task:
    name: str                       # --task, and the runs/<name>/ folder
    title: str
    architecture: str               # models.registry.ARCHITECTURES
    dataset: Dataset
    recipe: dict                    # the full preset: every hyper-parameter, grouped by concern
    quick: dict                     # what --preset quick changes in it
    labels: tuple[str, ...] = ()    # empty: the class folders' names, read from the data
    in_channels: int = 3
    input_size: int = 224
    resize_size: int | None = None  # images are kept at this side and centre-cropped to input_size
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    variants: tuple[Variant, ...] = (BASELINE,)   # what the app compares side by side (any task trains either)
    preparation: str | None = None  # the app's step before preprocessing (models.predict.PREPARATIONS)
    description: str = ""           # what the app's tab does, one paragraph
    intended_use: str = ""          # the card's "Intended uses"
    examples: str = ""              # assets/ glob of example images, until a run brings its own
    api_name: str = ""              # the classify endpoint (published: kept stable)
    alternatives: dict = field(default_factory=dict)   # another architecture -> the fields it changes

    def model_config(self, labels: tuple[str, ...] | None = None) -> ModelConfig:
        """The model this task trains (a folder task needs the labels its data has)."""
        return ModelConfig(self.architecture, self.in_channels, self.input_size, self.mean, self.std,
                           tuple(labels or self.labels), self.resize_size, self.preparation)

    def with_architecture(self, architecture: str | None) -> "Task":
        """The task trained with another of its architectures (--arch)."""
        if architecture in (None, self.architecture):
            return self
        if architecture not in self.alternatives:
            choices = ", ".join([self.architecture, *self.alternatives])
            raise ValueError(f"--arch {architecture}: {self.name} trains {choices}")
        return dataclasses.replace(self, architecture=architecture, **self.alternatives[architecture])

    def resolved_recipe(self, *, preset: str = "full", variant: Variant = BASELINE, binary: bool = False) -> dict:
        """A deep copy of the preset's recipe, with Random Erasing for that variant."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        recipe = merged(self.recipe, self.quick if preset == "quick" else {})
        if variant is RANDOM_ERASING:
            recipe["augment"]["random_erasing"] = dict(RANDOM_ERASING_DEFAULTS)
        recipe["loss"] = {"name": "bce_with_logits"} if binary else \
            {"name": "cross_entropy", "label_smoothing": recipe["loss"].get("label_smoothing", 0.0)}
        return recipe

    def train_command(self, variant: Variant = BASELINE) -> str:
        """The exact command that trains this model (the README and the app say the same)."""
        data = " --data-dir DIR" if self.dataset.local else ""
        return f"python -m training.train --task {self.name}{data}" + \
            (" --random-erasing" if Variant(variant) is RANDOM_ERASING else "")


def merged(base: dict, changes: dict) -> dict:
    """A deep copy of `base` with `changes` applied key by key (nested dicts merged)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else copy.deepcopy(value)
    return out


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task: the CLI, the data readers, the app, the card and the Hub code take it from here."""
    task.model_config(task.labels or ("a", "b"))   # refuse a record whose model could not be built
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


CIFAR_RECIPE = {
    "epochs": 40,
    "batch_size": 256,                                  # images per step
    "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    "schedule": {"name": "onecycle", "pct_start": 0.25,  # fraction of the steps warming up
                 "div_factor": 10.0, "final_div_factor": 1000.0},
    "loss": {"name": "cross_entropy", "label_smoothing": 0.1},
    "augment": {"crop": 32, "padding": 4, "flip": True, "random_erasing": None},
}
RESNET_RECIPE = {
    "epochs": 40,
    "batch_size": 64,
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    "schedule": {"name": "cosine", "warmup_epochs": 2},
    "loss": {"name": "bce_with_logits"},
    "augment": {"crop": 224, "padding": 0, "flip": True, "random_erasing": None},   # random 224 crop of 256 px
    "pretrained": None,                                 # or "IMAGENET1K_V2" (torchvision's weights)
}
# 3 epochs from torchvision's ImageNet weights (downloaded once, ~100 MB) at a fine-tuning rate: from
# scratch, ResNet50 needs far more epochs than a CPU affords (not measured here).
RESNET_QUICK = {"epochs": 3, "optimizer": {"lr": 0.01}, "schedule": {"warmup_epochs": 0},
                "pretrained": "IMAGENET1K_V2"}

register(Task(
    name="cifar10", title="CIFAR-10", architecture="vgg19_bn_32", input_size=32,
    labels=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    dataset=Dataset(name="CIFAR-10", source="torchvision.datasets.CIFAR10", hub_id="uoft-cs/cifar10",
                    hub_config="plain_text", layout="cifar-10-batches-py/ with data_batch_1..5, test_batch, batches.meta",
                    url="https://www.cs.toronto.edu/~kriz/cifar.html",
                    citation="@techreport{krizhevsky2009cifar,\n  title  = {Learning Multiple Layers of Features from "
                             "Tiny Images},\n  author = {Krizhevsky, Alex},\n  year   = {2009}\n}"),
    recipe=CIFAR_RECIPE, quick={"epochs": 5},
    description="Upload, drag and drop, paste or take a photo; the VGG19-BN trained on CIFAR-10 says which of "
                "its ten classes it looks like.",
    intended_use="Classifying small natural images into the ten CIFAR-10 classes. Every image is resized to the "
                 "model's input size, so small objects and fine detail are lost; CIFAR-10 photos are centred on "
                 "one object, and the model expects the same.",
    examples="sample_*.png", api_name="classify_cifar10"))

register(Task(
    name="mnist", title="MNIST", architecture="vgg19_bn_32", input_size=32, in_channels=1,
    labels=tuple(str(i) for i in range(10)), mean=(0.1307,), std=(0.3081,), preparation="mnist_digit",
    dataset=Dataset(name="MNIST", source="torchvision.datasets.MNIST", hub_id="ylecun/mnist", hub_config="mnist",
                    layout="MNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                           "t10k-labels-idx1-ubyte", url="http://yann.lecun.com/exdb/mnist/",
                    citation="@article{lecun1998mnist,\n  title   = {Gradient-based learning applied to document "
                             "recognition},\n  author  = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and "
                             "Haffner, Patrick},\n  journal = {Proceedings of the IEEE},\n  volume  = {86},\n  "
                             "number  = {11},\n  pages   = {2278--2324},\n  year    = {1998}\n}"),
    recipe={**CIFAR_RECIPE, "batch_size": 128,
            "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"name": "onecycle", "pct_start": 0.2, "div_factor": 10.0, "final_div_factor": 1000.0},
            "augment": {"crop": 32, "padding": 2, "flip": False, "random_erasing": None}},
    # One epoch over all 60,000 digits, the one-cycle schedule compressed into it (results/mnist/).
    quick={"epochs": 1, "schedule": {"pct_start": 0.15}},
    description="Draw a digit with the mouse or a finger, or upload a picture of one (a photo of a digit on paper "
                "works). It is turned into MNIST-style input (white on black, centred by mass in 28x28) and "
                "classified by the VGG19-BN trained on MNIST.",
    intended_use="Classifying a single handwritten digit, as in MNIST: grayscale, white digit on a black "
                 "background, centred. Drawings and photos of a digit must first be made MNIST-like (the "
                 "preparation step `mnist_digit`: background removed, cropped to the ink, centred by mass); "
                 "several digits in one image are refused, not read.",
    examples="mnist_*.png", api_name="classify_digit_image"))

register(Task(
    name="catsdogs", title="Cats vs Dogs", architecture="resnet50", input_size=224, resize_size=256,
    labels=("cat", "dog"), variants=(BASELINE, RANDOM_ERASING),
    dataset=Dataset(name="Oxford-IIIT Pet (cat vs dog)", source="torchvision.datasets.OxfordIIITPet",
                    train_split="trainval", val_split="test", hub_id="timm/oxford-iiit-pet", hub_config="default",
                    options={"target_types": "binary-category"},
                    layout="oxford-iiit-pet/ as torchvision downloads it, or an image folder: "
                           "train/{cat,dog}/* and val/{cat,dog}/*",
                    url="https://www.robots.ox.ac.uk/~vgg/data/pets/",
                    citation="@inproceedings{parkhi2012pets,\n  title     = {Cats and Dogs},\n  author    = {Parkhi, "
                             "Omkar M. and Vedaldi, Andrea and Zisserman, Andrew and Jawahar, C. V.},\n  booktitle = "
                             "{IEEE Conference on Computer Vision and Pattern Recognition},\n  year      = {2012}\n}"),
    recipe=RESNET_RECIPE, quick=RESNET_QUICK,
    description="One photo, two ResNet50s trained the same way from the same initial weights: one without and one "
                "with Random Erasing. Each gives P(cat) and P(dog).",
    intended_use="Telling a photo of a cat from a photo of a dog. An image with both, or with neither, still gets "
                 "one of the two labels.",
    examples="cat*.png", api_name="classify_catdog"))

register(Task(
    name="folder", title="Your images", architecture="resnet50", input_size=224, resize_size=256,
    variants=(BASELINE, RANDOM_ERASING), dataset=LOCAL_FOLDER, recipe=RESNET_RECIPE, quick=RESNET_QUICK,
    alternatives={"vgg19_bn_32": {"input_size": 32, "resize_size": 36, "recipe": CIFAR_RECIPE,
                                  "quick": {"epochs": 10}}},
    description="A model trained on your own images (a folder of class folders): drop an image on it.",
    intended_use="Classifying images like the ones in the training folder, into its classes. The model has seen "
                 "only those images: it says little about images from other sources.",
    api_name="classify_folder"))

QUICKEST_TASK = "mnist"     # what the Train tab offers first: its quick preset trains in minutes on a CPU
