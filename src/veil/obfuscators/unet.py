"""A stronger encoder-decoder obfuscator: MobileNet stages with U-Net skips from deep stages only.

No path carries the input's pixels to the output. This is ensured by construction:

* the encoder's first layer already has stride 2, and skips leave only from stages at stride
  >= 4 (``skip_from``, checked in ``__init__``): there is no skip from the input, nor from the
  stride-1 or stride-2 features;
* every skip passes through a 1x1 projection to fewer channels than the input values its
  cell covers (``3 * s * s`` at stride ``s``; the projection keeps at most half of them), so
  even a skip is a lossy bottleneck, never an identity-like copy of a pixel block;
* the decoder below the shallowest skip (stride 4 -> 1) sees decoder features only.

So the output at full resolution is synthesised from features at 1/4 of the resolution or
coarser, each squeezed below the information of the pixels it covers, like ``mobilenet_ae``
(whose single path is at 1/8) but with more capacity and multi-scale context.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from veil.obfuscators.autoencoder import _scaled, _upsample
from veil.obfuscators.base import Obfuscator
from veil.obfuscators.ops import pad_to_multiple
from veil.obfuscators.registry import OBFUSCATORS


class SkipUNet(Obfuscator):
    """Encoder of stride-2 stages (stride 2, 4, ..., 2**len(channels)), decoder by PixelShuffle.

    Args:
        channels: channels per encoder stage at width 1.0; stage ``i`` is at stride ``2**(i+1)``.
        blocks: extra stride-1 inverted residuals per encoder stage.
        skip_from: encoder strides that send a (projected) skip to the decoder; each >= 4.
        width: width multiplier of every stage.
        expand: inverted-residual expansion ratio.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 24, 48, 96),
        blocks: tuple[int, ...] = (0, 1, 2, 2),
        skip_from: tuple[int, ...] = (4, 8),
        width: float = 1.0,
        expand: int = 4,
    ) -> None:
        super().__init__()
        if len(channels) != len(blocks):
            raise ValueError("channels and blocks need one entry per stage")
        c = [_scaled(ch, width) for ch in channels]
        strides = [2 ** (i + 1) for i in range(len(c))]
        if any(s < 4 or s not in strides[:-1] for s in skip_from):
            raise ValueError(f"skips may only leave encoder stages at stride >= 4 below the bottom, got {skip_from}")
        self.stride = strides[-1]
        self.skip_from = tuple(int(s) for s in skip_from)
        self.stages = nn.ModuleList()
        for i, n in enumerate(blocks):
            first = (Conv2dNormActivation(3, c[0], kernel_size=3, stride=2, activation_layer=nn.ReLU6) if i == 0
                     else InvertedResidual(c[i - 1], c[i], 2, expand))
            self.stages.append(nn.Sequential(first, *(InvertedResidual(c[i], c[i], 1, expand) for _ in range(n))))
        # skip projections: at stride s a cell covers 3*s*s input values; keep at most half
        self.project = nn.ModuleDict()
        for s in self.skip_from:
            i = strides.index(s)
            self.project[str(s)] = Conv2dNormActivation(c[i], min(c[i], 3 * s * s // 2), kernel_size=1,
                                                        activation_layer=nn.ReLU6)
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for i in range(len(c) - 1, 0, -1):  # stride strides[i] -> strides[i - 1]
            self.up.append(_upsample(c[i], c[i - 1]))
            extra = 0
            if strides[i - 1] in self.skip_from:  # a projection exists only for the strides that skip
                projection: Conv2dNormActivation = self.project[str(strides[i - 1])]  # type: ignore[assignment]
                extra = projection[0].out_channels
            self.fuse.append(nn.Sequential(
                Conv2dNormActivation(c[i - 1] + extra, c[i - 1], kernel_size=1, activation_layer=nn.ReLU6),
                InvertedResidual(c[i - 1], c[i - 1], 1, expand),
            ))
        self.head = nn.Sequential(_upsample(c[0], 3), nn.Sigmoid())
        self._strides = strides

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        skips: dict[int, torch.Tensor] = {}
        for s, stage in zip(self._strides, self.stages):
            x = stage(x)
            if s in self.skip_from:
                skips[s] = self.project[str(s)](x)
        for i, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            x = up(x)
            s = self._strides[len(self._strides) - 2 - i]
            x = fuse(torch.cat([x, skips[s]], 1) if s in skips else x)
        return self.head(x)[..., :h, :w]


@OBFUSCATORS.register("unet")
def unet(width: float = 1.0, skip_from: tuple[int, ...] = (4, 8)) -> SkipUNet:
    """Four stages (stride 16 at the bottom), skips from strides 4 and 8."""
    return SkipUNet(width=width, skip_from=tuple(skip_from))
