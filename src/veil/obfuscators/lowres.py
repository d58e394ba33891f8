"""Learned extreme low resolution (wu-2018 2.1; Ryoo et al. 2017): downsample by ``factor``, upsample.

1. **Downsampling** (learned, on the camera): one linear convolution with kernel = stride =
   ``factor`` per output pixel (initialised to area averaging), clamped to [0, 1] and
   quantised to 8 bits (straight-through): an RGB image of ``ceil(H / factor) x ceil(W /
   factor)`` pixels (40 x 30 for a 640 x 480 frame at the default factor 16).
2. **Upsampling** (learned): PixelShuffle stages with inverted residuals back to the input's
   size, a 3-channel image in [0, 1] the detector reads.

What is transmitted is the low-resolution 8-bit image; the output is a function of it only
(the upsampler may run on either side of the network). The audit attacks the upsampled image,
which carries no information the low-resolution image lacks.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from veil.obfuscators.autoencoder import _scaled, _upsample
from veil.obfuscators.base import Obfuscator
from veil.obfuscators.latent import latent_grid
from veil.obfuscators.ops import pad_to_multiple, round_ste
from veil.obfuscators.registry import OBFUSCATORS


class LowResolution(Obfuscator):
    """Learned ``factor``-times downsampling to an 8-bit RGB image, then learned upsampling.

    Args:
        factor: downsampling factor per side, a power of 2.
        width: width multiplier of the upsampler.
        expand: inverted-residual expansion ratio of the upsampler.
    """

    def __init__(self, factor: int = 16, width: float = 1.0, expand: int = 4) -> None:
        super().__init__()
        stages = int(round(math.log2(factor)))
        if factor < 2 or 2**stages != factor:
            raise ValueError(f"the downsampling factor must be a power of 2 >= 2, got {factor}")
        self.stride = factor
        self.transmitted = f"the {factor}x-downsampled 8-bit RGB image (1/{factor} of each side)"
        self.attacked = "the upsampled image, a function of the transmitted low-resolution image only"
        self.down = nn.Conv2d(3, 3, kernel_size=factor, stride=factor)
        with torch.no_grad():  # start as area averaging of each channel
            self.down.weight.zero_()
            for k in range(3):
                self.down.weight[k, k] = 1 / factor**2
            assert self.down.bias is not None  # nn.Conv2d's default bias=True
            self.down.bias.zero_()
        c = [_scaled(ch, width) for ch in (64, 48, 32, 24, 16, 16, 16)[:stages]]
        up: list[nn.Module] = [nn.Conv2d(3, c[0], kernel_size=3, padding=1), nn.ReLU6()]
        for a, b in zip(c[:-1], c[1:]):
            up += [_upsample(a, b), InvertedResidual(b, b, 1, expand)]
        # the last, full-resolution step is a plain PixelShuffle: most of a frame's MACs would be there
        up += [_upsample(c[-1], 3), nn.Sigmoid()]
        self.up = nn.Sequential(*up)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """The transmitted image: (B, 3, ceil(H / factor), ceil(W / factor)), 8-bit values in [0, 1]."""
        return round_ste(self.down(pad_to_multiple(x, self.stride)).clamp(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.up(self.downsample(x))[..., :h, :w]

    def latent_bits_per_frame(self, frame_size: tuple[int, int]) -> float:
        """The transmitted image: 3 channels of ceil(H / factor) x ceil(W / factor) 8-bit values."""
        gh, gw = latent_grid(frame_size, self.stride)
        return 3 * gh * gw * 8


@OBFUSCATORS.register("lowres")
def lowres(factor: int = 16, width: float = 1.0) -> LowResolution:
    """Learned 16x downsampling (40x30 at 640x480) and a PixelShuffle upsampler."""
    return LowResolution(factor, width)
