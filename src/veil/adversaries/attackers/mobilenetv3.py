"""Attacker (c): torchvision MobileNetV3-Small trained from scratch."""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v3_small

from veil.adversaries.attackers.base import TorchAttacker
from veil.adversaries.registry import ATTACKERS


class MobileNetV3Attacker(TorchAttacker):
    name = "mobilenetv3_small"
    default_epochs = 6  # ~1.4 CPU-s an epoch at 48x96 x 300 crops

    def build(self, num_outputs: int) -> nn.Module:
        return mobilenet_v3_small(weights=None, num_classes=num_outputs)


@ATTACKERS.register("mobilenetv3_small")
def mobilenetv3_small(**kwargs) -> MobileNetV3Attacker:
    return MobileNetV3Attacker(**kwargs)
