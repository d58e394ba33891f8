"""The budget models: small identity classifiers of different kinds, so that the ensemble covers
shape (CNNs) and clothing colour (``ColourStripes``), none of them one of the audit's attackers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import MNASNet, MobileNetV2, ShuffleNetV2


def _shufflenet(num_classes: int, width: float) -> nn.Module:
    # ShuffleNetV2 x1.0 stage widths scaled; groups need even channel counts
    stages = [24] + [max(8, 2 * round(c * width / 2)) for c in (116, 232, 464)] + [max(64, round(1024 * width))]
    return ShuffleNetV2([4, 8, 4], stages, num_classes=num_classes)


class ColourStripes(nn.Module):
    """Clothing colour by body height: mean and spread of each channel in horizontal stripes,
    then an MLP. Small CNNs learn shape first; this budget model makes the ensemble cover the
    colour cue that re-identification relies on most, differentiably."""

    def __init__(self, num_classes: int, width: float, stripes: int = 8) -> None:
        super().__init__()
        hidden = max(32, round(256 * width))
        self.stripes = stripes
        self.head = nn.Sequential(nn.BatchNorm1d(6 * stripes), nn.Linear(6 * stripes, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.adaptive_avg_pool2d(x, (self.stripes, 1)).flatten(2)  # (N, 3, stripes)
        spread = (F.adaptive_avg_pool2d(x * x, (self.stripes, 1)).flatten(2) - mean**2).clamp_min(1e-6).sqrt()
        return self.head(torch.cat([mean, spread], 1).flatten(1))


#: budget architectures, none of them one of the audit's unseen attackers (wu-2018 3.4)
ARCHITECTURES = {
    "mobilenet_v2": lambda k, w: MobileNetV2(num_classes=k, width_mult=w, dropout=0.0),
    "shufflenet_v2": _shufflenet,
    "mnasnet": lambda k, w: MNASNet(w, num_classes=k, dropout=0.0),
    "colour_stripes": ColourStripes,
}
