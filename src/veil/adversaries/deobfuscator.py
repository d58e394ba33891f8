"""Reconstruction adversaries: networks that try to recover the original frame."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation

from veil.adversaries.registry import DEOBFUSCATORS
from veil.obfuscators.ops import pad_to_multiple


class ConvAutoencoder(nn.Module):
    """Dense 3x3 conv encoder-decoder with PixelShuffle upsampling, output in [0, 1].

    Larger than the obfuscator (about 0.67 M parameters by default) but cheap to train on a
    CPU: its compute sits at 1/4 to 1/16 resolution.
    """

    def __init__(self, channels: tuple[int, ...] = (32, 64, 96, 128)) -> None:
        super().__init__()
        c = channels
        self.stride = 2 ** len(c)
        layers: list[nn.Module] = [Conv2dNormActivation(3, c[0], 3, 2)]
        for a, b in zip(c[:-1], c[1:]):
            layers += [Conv2dNormActivation(a, b, 3, 2), Conv2dNormActivation(b, b, 3, 1)]
        for a, b in zip(c[::-1][:-1], c[::-1][1:]):
            layers += [nn.Conv2d(a, b * 4, 1), nn.PixelShuffle(2), Conv2dNormActivation(b, b, 3, 1)]
        layers += [nn.Conv2d(c[0], 12, 3, padding=1), nn.PixelShuffle(2), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        return self.net(x)[..., :h, :w]


@DEOBFUSCATORS.register("conv_ae")
def conv_ae(width: float = 1.0) -> ConvAutoencoder:
    """The training-time deobfuscator D of de-coninck-2024."""
    return ConvAutoencoder(tuple(max(8, int(round(ch * width))) for ch in (32, 64, 96, 128)))
