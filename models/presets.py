"""The default ModelConfig of each task, for code that must describe a model before any
run exists (the app's Architecture tab, docs) without importing `training/`.

These are the same values as `training.tasks.TASKS[task]` (model and augment recipe); tests/test_app_handlers.py
checks that the two agree. A trained model's own config.json always takes precedence.
"""
from __future__ import annotations

from models.registry import ModelConfig

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck")
MNIST_LABELS = tuple(str(i) for i in range(10))
CATSDOGS_LABELS = ("cat", "dog")

DEFAULT_MODEL_CONFIGS: dict[str, ModelConfig] = {
    "cifar10": ModelConfig(architecture="vgg19_bn_32", num_classes=10, in_channels=3, input_size=32,
                           mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                           labels=CIFAR10_LABELS),
    "mnist": ModelConfig(architecture="vgg19_bn_32", num_classes=10, in_channels=1, input_size=32,
                         mean=(0.1307,), std=(0.3081,), labels=MNIST_LABELS),
    "catsdogs": ModelConfig(architecture="resnet50_binary", num_classes=2, in_channels=3, input_size=224,
                            resize_size=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                            labels=CATSDOGS_LABELS),
}

# The training augmentation of each task (recipe["augment"] in config.json), for showing
# the transforms before a run exists; the same values as training.tasks' recipes.
DEFAULT_AUGMENT: dict[str, dict] = {
    "cifar10": {"crop": 32, "padding": 4, "flip": True, "random_erasing": None},
    "mnist": {"crop": 32, "padding": 2, "flip": False, "random_erasing": None},
    "catsdogs": {"crop": 224, "padding": 0, "flip": True, "random_erasing": None},
}

# Random Erasing with the paper's defaults (Zhong et al. 2017), as `--random-erasing` adds it.
RANDOM_ERASING_DEFAULTS: dict = {"p": 0.5, "scale": [0.02, 0.4], "ratio": [0.3, 3.3], "value": "random"}
