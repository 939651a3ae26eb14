"""ResNet50 with one output per class, or one logit for two classes: torchvision's ResNet50, `fc` replaced.

A two-class head returns one *logit* (no Sigmoid layer). Training uses `BCEWithLogitsLoss` on it;
`torch.sigmoid` is applied exactly once, at inference (models/predict.py), giving P(labels[1]).
A head ending in Sigmoid followed by a second sigmoid squashes every output into (0.5, 0.73) and
always predicts class 1: the trap this layout avoids. The state dict is torchvision's (and timm's)
`resnet50` with `fc` sized to the outputs.

Parameters with one logit: 23,510,081 (tested in tests/test_models.py).
"""
from __future__ import annotations

from torch import nn
from torchvision.models import resnet50 as torchvision_resnet50


def resnet50(num_outputs: int = 1) -> nn.Module:
    model = torchvision_resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_outputs)
    return model
