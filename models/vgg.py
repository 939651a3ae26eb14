"""VGG19 with batch norm (configuration E of Simonyan & Zisserman) for 32x32 input.

The 16 conv layers of configuration E, each followed by BatchNorm and ReLU, and five 2x2
max-pools take a 32x32 image to a 512x1x1 map. The classifier is sized for that map, as
CIFAR VGGs do, instead of torchvision's ImageNet head (4096-4096 on a 7x7 map, 139M
parameters), which on 32x32 input would only see a 1x1 map replicated 49 times.

Parameter count (tested in tests/test_models.py):
  in_channels=3, num_classes=10: 20,297,674
  in_channels=1, num_classes=10: 20,296,522
"""
from __future__ import annotations

import torch
from torch import nn

# Configuration E: channel counts, "M" for a 2x2 max-pool.
CONFIG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
            512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class VGG19BN(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for v in CONFIG_E:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1, bias=False),
                           nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # BatchNorm keeps its own initialisation (weight 1, bias 0), which draws no random numbers.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
