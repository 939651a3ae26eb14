"""ResNet50 for a binary task: torchvision's ResNet50 with `fc` replaced by one output node.

The head returns one *logit* (no Sigmoid layer). Training uses `BCEWithLogitsLoss` on it;
`torch.sigmoid` is applied exactly once, at inference (models/predict.py), giving P(class 1).
A head ending in Sigmoid followed by a second sigmoid squashes every output into
(0.5, 0.73) and always predicts class 1: the trap this layout avoids.

Parameters: 23,510,081 (tested in tests/test_models.py).
"""
from __future__ import annotations

from torch import nn
from torchvision.models import resnet50


def resnet50_binary() -> nn.Module:
    model = resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, 1)
    return model
