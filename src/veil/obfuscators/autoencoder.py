"""The paper's MobileNet-style obfuscator O: a tiny encoder-decoder of inverted residuals.

It has no skip connections on purpose: a skip would carry the original pixels straight to
the output, which is exactly the leak it must not have. Upsampling is a 1x1 convolution
followed by PixelShuffle, which costs a fraction of bilinear upsampling plus a full-resolution
convolution on a CPU or an edge device.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from veil.obfuscators.base import Obfuscator
from veil.obfuscators.ops import pad_to_multiple
from veil.obfuscators.registry import OBFUSCATORS


def _scaled(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


def _upsample(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out * 4, kernel_size=1), nn.PixelShuffle(2))


class MobileNetAutoencoder(Obfuscator):
    """Encoder (stride-2 stages) then decoder (PixelShuffle + inverted residual), output in [0, 1].

    Args:
        channels: channels of each stage at width 1.0; each stage halves the spatial size.
        blocks: extra stride-1 inverted-residual blocks per encoder stage.
        width: MobileNet width multiplier applied to every stage.
        expand: inverted-residual expansion ratio.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 24, 32),
        blocks: tuple[int, ...] = (0, 1, 1),
        width: float = 1.0,
        expand: int = 4,
    ) -> None:
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError("channels and blocks need one entry per stage")
        c = [_scaled(ch, width) for ch in channels]
        self.stride = 2 ** len(c)
        encoder: list[nn.Module] = [
            Conv2dNormActivation(3, c[0], kernel_size=3, stride=2, activation_layer=nn.ReLU6)
        ]
        for i, n in enumerate(blocks):
            if i > 0:
                encoder.append(InvertedResidual(c[i - 1], c[i], 2, expand))
            encoder.extend(InvertedResidual(c[i], c[i], 1, expand) for _ in range(n))
        decoder: list[nn.Module] = []
        for i in range(len(c) - 1, 1, -1):
            decoder += [_upsample(c[i], c[i - 1]), InvertedResidual(c[i - 1], c[i - 1], 1, expand)]
        if len(c) > 1:
            decoder += [
                _upsample(c[1], c[0]),
                Conv2dNormActivation(c[0], c[0], kernel_size=3, groups=c[0], activation_layer=nn.ReLU6),
            ]
        decoder += [_upsample(c[0], 3), nn.Sigmoid()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.decoder(self.encoder(pad_to_multiple(x, self.stride)))[..., :h, :w]


@OBFUSCATORS.register("mobilenet_ae")
def mobilenet_ae(width: float = 1.0) -> MobileNetAutoencoder:
    """The default obfuscator: about 0.04 M parameters at width 1.0, as in the paper."""
    return MobileNetAutoencoder(channels=(16, 24, 32), blocks=(0, 1, 1), width=width)
