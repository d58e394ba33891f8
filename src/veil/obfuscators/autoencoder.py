"""The paper's MobileNet-style obfuscator O: a tiny encoder-decoder of inverted residuals.

It has no skip connections on purpose: a skip would carry the original pixels straight to
the output, which is exactly the leak it must not have. Upsampling is a 1x1 convolution
followed by PixelShuffle, which costs a fraction of bilinear upsampling plus a full-resolution
convolution on a CPU or an edge device.

Two of the bottleneck family's levers (``veil.obfuscators.bottleneck``) are options here too,
both off by default so checkpoints saved before them load unchanged: ``grey`` (the last layer
makes one channel, replicated to three) and ``levels`` (the 1/8 latent goes through a sigmoid
and is quantised to that many values, straight-through in training; ``noise`` adds per-frame
noise before that).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from veil.obfuscators.base import Obfuscator
from veil.obfuscators.latent import LatentQuantiser, latent_grid
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
        grey: output one channel, replicated to three (trained colour removal).
        levels: quantise the latent to this many values per element (None: float, as before).
        noise: per-frame Gaussian noise on the sigmoid latent before quantisation (needs ``levels``).
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 24, 32),
        blocks: tuple[int, ...] = (0, 1, 1),
        width: float = 1.0,
        expand: int = 4,
        grey: bool = False,
        levels: int | None = None,
        noise: float = 0.0,
    ) -> None:
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError("channels and blocks need one entry per stage")
        if noise and levels is None:
            raise ValueError("latent noise needs a quantised latent (levels)")
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
        self.grey = bool(grey)
        decoder += [_upsample(c[0], 1 if self.grey else 3), nn.Sigmoid()]
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.latent_channels = c[-1]
        # no parameters: a float latent stays exactly what it was (no sigmoid, no rounding)
        self.quantiser = LatentQuantiser(levels, noise) if levels is not None else None
        if self.grey or levels is not None:
            self.transmitted = (f"the decoded {'grey ' if self.grey else ''}image: a function of a {c[-1]}-channel "
                                f"latent at 1/{self.stride} of each side"
                                + (f" quantised to {levels} levels" if levels is not None else ""))

    @property
    def levels(self) -> int | None:
        return None if self.quantiser is None else self.quantiser.levels

    def latent_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output (the 1/8 latent, before any quantiser)."""
        return self.encoder(pad_to_multiple(x, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        latent = self.latent_features(x)
        if self.quantiser is not None:
            latent = self.quantiser(latent)
        y = self.decoder(latent)[..., :h, :w]
        return y.repeat(1, 3, 1, 1) if self.grey else y

    def latent_bits_per_frame(self, frame_size: tuple[int, int]) -> float | None:
        bits = None if self.quantiser is None else self.quantiser.bits_per_value()
        if bits is None:
            return None
        gh, gw = latent_grid(frame_size, self.stride)
        return self.latent_channels * gh * gw * bits


@OBFUSCATORS.register("mobilenet_ae")
def mobilenet_ae(width: float = 1.0, grey: bool = False, levels: int | None = None,
                 noise: float = 0.0) -> MobileNetAutoencoder:
    """The default obfuscator: about 0.04 M parameters at width 1.0, as in the paper."""
    return MobileNetAutoencoder(channels=(16, 24, 32), blocks=(0, 1, 1), width=width, grey=grey, levels=levels,
                                noise=noise)
