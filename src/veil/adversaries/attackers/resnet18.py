"""Attacker (b): torchvision ResNet-18 trained from scratch."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18

from veil.adversaries.attackers.base import TorchAttacker
from veil.adversaries.registry import ATTACKERS


class ResNet18Attacker(TorchAttacker):
    name = "resnet18"
    default_epochs = 2  # ~5.5 CPU-s an epoch at 48x96 x 300 crops: the costliest network here

    def build(self, num_outputs: int) -> nn.Module:
        return resnet18(weights=None, num_classes=num_outputs)


@ATTACKERS.register("resnet18")
def resnet18_attacker(**kwargs) -> ResNet18Attacker:
    return ResNet18Attacker(**kwargs)
