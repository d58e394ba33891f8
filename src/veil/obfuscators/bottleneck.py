"""An obfuscator whose bottleneck cannot carry identity: removal by design, stated in bits.

Adversarial training hides identity from the models it trains against; it does not remove it
(issue 18). Here the structure bounds what a frame's output can hold, and training only has to
keep what the detector needs. Four levers, each a constructor argument saved in the checkpoint:

* ``latent`` channels at 1/``stride`` of each side (8 or 16): a narrow latent;
* ``levels`` values per latent element (``LatentQuantiser``: straight-through in training,
  exactly quantised at inference and in the ONNX export); None leaves it float;
* ``grey``: the decoder synthesises ONE channel, replicated to three for the detector (trained
  colour removal: greying a colour obfuscator's output afterwards costs the detector what the
  net hid in its colours, so the net must learn to do without them);
* ``noise``: per-frame Gaussian noise on the latent before quantisation (off by default).

Bound: the output is a function of ``latent x ceil(H / stride) x ceil(W / stride)`` values of
``log2(levels)`` bits each (``latent_bits_per_frame``). Encoder, quantiser and decoder all run
on the camera, so what leaves it is a function of those bits.

Cost: almost all work is at 1/``stride``. The stem is one 4x4 stride-4 convolution (a patch
embedding: the only layer that reads full-resolution pixels); the decoder leaves the latent
grid by one 1x1 convolution to ``stride**2`` values per position and a PixelShuffle (a reshape)
to full resolution. No convolution runs at full or half resolution: in ONNX Runtime at one
thread those cost more than the rest of the network (bench/results/edge-cpu.json).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.ops.misc import Conv2dNormActivation

from veil.obfuscators.autoencoder import _scaled
from veil.obfuscators.base import Obfuscator
from veil.obfuscators.latent import LatentQuantiser, latent_grid
from veil.obfuscators.ops import pad_to_multiple
from veil.obfuscators.registry import OBFUSCATORS

STEM = 4  # the patch-embedding stem's stride


class Bottleneck(Obfuscator):
    """Patch-embedding encoder -> quantised k-channel latent at 1/stride -> cheap decoder.

    Args:
        latent: channels of the latent (k).
        stride: the latent's downsampling per side, a power of 2 >= 8.
        levels: values per latent element (None: a float latent, no bound in bits).
        grey: decode one channel, replicated to three (trained colour removal).
        width: width multiplier of the encoder and decoder bodies (16 channels at 1/4, 32 below).
        blocks: inverted residuals at the latent's resolution, on each side of the latent.
        expand: their expansion ratio.
        noise: standard deviation of per-frame Gaussian noise on the sigmoid latent, before
            quantisation (0: none).
    """

    def __init__(self, latent: int = 8, stride: int = 8, levels: int | None = 4, grey: bool = True,
                 width: float = 1.0, blocks: int = 1, expand: int = 2, noise: float = 0.0) -> None:
        super().__init__()
        stages = int(round(math.log2(stride))) if stride > 0 else 0
        if stride < 8 or 2**stages != stride:
            raise ValueError(f"the latent's stride must be a power of 2 >= 8, got {stride}")
        if latent < 1 or blocks < 0 or expand < 1:
            raise ValueError(f"latent >= 1, blocks >= 0 and expand >= 1 needed; got {latent}, {blocks}, {expand}")
        self.stride = stride
        self.latent_channels = latent
        self.grey = bool(grey)
        c0, c1 = _scaled(16, width), _scaled(32, width)
        encoder: list[nn.Module] = [Conv2dNormActivation(3, c0, kernel_size=STEM, stride=STEM, padding=0,
                                                         activation_layer=nn.ReLU6)]
        c = c0
        for _ in range(stages - 2):  # stride 4 -> stride: depthwise 3x3 stride 2, pointwise to c1
            encoder += [Conv2dNormActivation(c, c, kernel_size=3, stride=2, groups=c, activation_layer=nn.ReLU6),
                        Conv2dNormActivation(c, c1, kernel_size=1, activation_layer=nn.ReLU6)]
            c = c1
        encoder += [InvertedResidual(c1, c1, 1, expand) for _ in range(blocks)]
        encoder.append(nn.Conv2d(c1, latent, kernel_size=1))
        self.encoder = nn.Sequential(*encoder)
        self.quantiser = LatentQuantiser(levels, noise)
        out = 1 if self.grey else 3
        decoder: list[nn.Module] = [Conv2dNormActivation(latent, c1, kernel_size=1, activation_layer=nn.ReLU6)]
        decoder += [InvertedResidual(c1, c1, 1, expand) for _ in range(blocks)]
        # straight to full resolution: a PixelShuffle is a reshape, where a convolution at full
        # (or half) resolution would cost more than the whole rest of the network in ONNX Runtime;
        # the sigmoid comes first (the same values), where ONNX Runtime fuses it into the convolution
        decoder += [nn.Conv2d(c1, out * stride**2, kernel_size=1), nn.Sigmoid(), nn.PixelShuffle(stride)]
        self.decoder = nn.Sequential(*decoder)
        bits = self.quantiser.bits_per_value()
        latent_text = (f"a {latent}-channel latent at 1/{stride} of each side, "
                       + (f"{levels} levels ({bits:g} bits) per value" if bits is not None else "float values"))
        self.transmitted = (f"the decoded {'grey (one channel, replicated to three)' if self.grey else 'RGB'} image: "
                            f"a function of {latent_text}; encoder, quantiser and decoder all run on the camera")
        self.attacked = "the decoded image, a function of the quantised latent only"

    @property
    def levels(self) -> int | None:
        return self.quantiser.levels

    def latent_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output before the quantiser (its sigmoid is the latent before rounding)."""
        return self.encoder(pad_to_multiple(x, self.stride))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The quantised latent (B, latent, ceil(H / stride), ceil(W / stride))."""
        return self.quantiser(self.latent_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.decoder(self.encode(x))[..., :h, :w]  # crop the one channel before replicating it
        return y.repeat(1, 3, 1, 1) if self.grey else y

    def latent_bits_per_frame(self, frame_size: tuple[int, int]) -> float | None:
        bits = self.quantiser.bits_per_value()
        if bits is None:
            return None
        gh, gw = latent_grid(frame_size, self.stride)
        return self.latent_channels * gh * gw * bits


@OBFUSCATORS.register("bottleneck")
def bottleneck(latent: int = 8, stride: int = 8, levels: int | None = 4, grey: bool = True, width: float = 1.0,
               blocks: int = 1, expand: int = 2, noise: float = 0.0) -> Bottleneck:
    """A grey output from an 8-channel, 4-level latent at 1/8: 76,800 bits per 640x480 frame by default."""
    return Bottleneck(latent, stride, levels, grey, width, blocks, expand, noise)
