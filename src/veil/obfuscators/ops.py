"""Small differentiable building blocks shared by several obfuscator families."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` by edge replication to a multiple of ``multiple``.

    Unconditional (a zero pad is free) so an exported graph pads any input size correctly.
    """
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode="replicate")


def round_ste(x: torch.Tensor, levels: int = 256) -> torch.Tensor:
    """Quantise ``x`` in [0, 1] to ``levels`` values; the gradient passes straight through.

    A sensor's ADC (or an 8-bit image on the wire) in the forward pass, the identity in the
    backward pass, so everything before it still learns.
    """
    q = torch.round(x.clamp(0, 1) * (levels - 1)) / (levels - 1)
    return x + (q - x).detach()
