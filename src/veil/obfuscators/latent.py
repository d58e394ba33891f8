"""A quantised latent: the part of an obfuscator that bounds, in bits, what a frame can carry.

``LatentQuantiser`` maps an encoder's unbounded features to ``levels`` values per element:

1. ``u = sigmoid(features)`` in (0, 1);
2. optional per-frame noise ``u + noise * N(0, 1)`` (fresh draws for every frame, in training
   AND on the camera: a privacy mechanism, not only a regulariser; ``generator`` seeds it);
3. ``q = round(u * (levels - 1)) / (levels - 1)``: exactly ``levels`` values at inference and in
   the ONNX export (a ``Round`` node), straight-through in training (forward quantised,
   backward the identity), so the decoder always sees what the camera will produce.

Noise comes before the rounding, so the output stays a function of the quantised latent: the
bound ``latent values x log2(levels)`` bits per frame holds with noise on. Without ``levels``
the latent is float (no bound in bits). The quantiser has no parameters, so adding it to an
architecture leaves that architecture's checkpoint keys unchanged.

While training, the last latent is kept (``last_latent``: ``u`` after noise, before rounding,
with its gradient) for a rate penalty (``veil.training.adversaries.rate``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from veil.obfuscators.ops import round_ste


class LatentQuantiser(nn.Module):
    """Sigmoid, optional per-frame Gaussian noise, then ``levels`` values (straight-through)."""

    def __init__(self, levels: int | None = None, noise: float = 0.0) -> None:
        super().__init__()
        if levels is not None and not 2 <= int(levels) <= 2**16:
            raise ValueError(f"a quantised latent needs 2 to 65536 levels, got {levels}")
        if noise < 0:
            raise ValueError(f"the latent noise is a standard deviation, >= 0; got {noise}")
        self.levels = None if levels is None else int(levels)
        self.noise = float(noise)
        #: seeds the noise draws (tests); None: torch's global generator
        self.generator: torch.Generator | None = None
        self.last_latent: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        u = torch.sigmoid(features)
        if self.noise > 0:
            if self.generator is None:
                draws = torch.randn_like(u)
            else:
                draws = torch.randn(u.shape, generator=self.generator, device=u.device, dtype=u.dtype)
            u = (u + self.noise * draws).clamp(0, 1)
        if self.training:  # kept for a rate term; never during export (eval mode)
            self.last_latent = u
        return u if self.levels is None else round_ste(u, self.levels)

    def __getstate__(self) -> dict:
        # a copy (copy.deepcopy, pickle) leaves out the last training step's latent: it is part of that
        # step's autograd graph, which cannot be copied (the cost of a just-trained model deep-copies it)
        return {**self.__dict__, "last_latent": None}

    def bits_per_value(self) -> float | None:
        """log2(levels); None for a float latent."""
        return None if self.levels is None else math.log2(self.levels)


def latent_grid(frame_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """(height, width) of a latent at ``stride`` for a ``frame_size`` (width, height) frame, the
    frame padded to a multiple of the stride first (``pad_to_multiple``)."""
    w, h = frame_size
    return -(-h // stride), -(-w // stride)


def channel_entropy(q: torch.Tensor, levels: int) -> torch.Tensor:
    """Empirical entropy in bits per value of each channel of quantised latents ``q`` (B, k, h, w):
    the rate of a factorised code (one static distribution per channel) fitted to these values,
    so ``sum(channel_entropy) x h x w`` estimates the bits a frame needs after entropy coding."""
    k = q.shape[1]
    index = torch.round(q.detach().float() * (levels - 1)).long().clamp(0, levels - 1)
    index = index.transpose(0, 1).reshape(k, -1)
    counts = torch.zeros(k, levels, device=q.device).scatter_add_(1, index, torch.ones_like(index, dtype=torch.float))
    p = counts / counts.sum(1, keepdim=True)
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(1)


def soft_channel_entropy(u: torch.Tensor, levels: int, bandwidth: float = 0.5) -> torch.Tensor:
    """A differentiable proxy of :func:`channel_entropy` on the latent before rounding ``u``
    (B, k, h, w) in [0, 1]: each value is spread over the levels by a Gaussian kernel of
    ``bandwidth`` levels (a soft histogram), and each channel's histogram gives its entropy."""
    centres = torch.arange(levels, device=u.device, dtype=torch.float) / (levels - 1)
    distance = (u.float().unsqueeze(-1) - centres) * (levels - 1)  # in levels
    weights = torch.softmax(-distance.square() / (2 * bandwidth**2), dim=-1)  # (B, k, h, w, levels)
    p = weights.transpose(0, 1).reshape(u.shape[1], -1, levels).mean(1)
    return -(p * torch.log2(p.clamp_min(1e-12))).sum(1)
