"""Attacker (a): a small CNN trained from scratch."""

from __future__ import annotations

from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from veil.adversaries.attackers.base import TorchAttacker
from veil.adversaries.registry import ATTACKERS


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU stages (stride-2 downsampling), global average pooling, linear head."""

    def __init__(self, num_outputs: int, channels: tuple[int, ...] = (32, 64, 128, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            # the first stage runs at full resolution: one conv there keeps CPU training cheap
            layers += [Conv2dNormActivation(c_in, c, 3, stride=2), Conv2dNormActivation(c, c, 3)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in, num_outputs))

    def forward(self, x):
        return self.head(self.features(x))


class SmallCNNAttacker(TorchAttacker):
    name = "small_cnn"
    default_epochs = 6  # ~1.5 CPU-s an epoch at 48x96 x 300 crops (see budget notes in base.py)

    def build(self, num_outputs: int) -> nn.Module:
        return SmallCNN(num_outputs)


@ATTACKERS.register("small_cnn")
def small_cnn(**kwargs) -> SmallCNNAttacker:
    return SmallCNNAttacker(**kwargs)
