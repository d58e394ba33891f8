"""A rate term: the detector's loss plus a penalty on the entropy of O's quantised latent.

Not an adversary that learns: it has no network and no update. Its term is the soft-histogram
entropy of the latent (``veil.obfuscators.latent.soft_channel_entropy``), in bits per latent
value (0 to log2 levels), averaged over the channels, so its weight trades one bit per value
against the detector's loss: the trade-off is one number (``--adversary rate:WEIGHT``).

It reads the latent the obfuscator kept in its last training forward pass
(``LatentQuantiser.last_latent``: before rounding, after noise, with its gradient), so it
needs a quantised latent: ``bottleneck``, or ``mobilenet_ae`` with ``levels``.

Logged each step: ``rate_soft_bits_per_value`` (the term), ``rate_bits_per_value`` (the hard
histogram's entropy of the rounded latent) and ``rate_bits_per_frame_640x480`` (the per-channel
entropies times the latent positions of a 640x480 frame: what an entropy coder with one static
distribution per channel would need, measured on this batch).

Options (``--adversary-option rate.NAME=VALUE``): ``bandwidth`` (the soft histogram's kernel
width in levels, default 0.5).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from veil.errors import VeilError
from veil.obfuscators.latent import channel_entropy, latent_grid, soft_channel_entropy
from veil.training.adversaries.base import AdversaryContext, Batch, TrainingAdversary
from veil.training.adversaries.registry import TRAINING_ADVERSARIES

OPTIONS = ("bandwidth",)


@TRAINING_ADVERSARIES.register("rate")
class RateTerm(TrainingAdversary):
    name = "rate"
    reads_output = False  # the penalty is on the quantised latent inside O

    def __init__(self, context: AdversaryContext, options: dict | None = None) -> None:
        super().__init__(context, options)
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise VeilError(f"unknown rate option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
        self.bandwidth = float(options.get("bandwidth", 0.5))
        if self.bandwidth <= 0:
            raise VeilError(f"rate.bandwidth must be > 0, got {self.bandwidth}")
        quantiser = getattr(context.obfuscator, "quantiser", None)
        if quantiser is None or getattr(quantiser, "levels", None) is None:
            raise VeilError(f"the rate term needs an obfuscator with a quantised latent (bottleneck, or mobilenet_ae "
                            f"with levels=...); {context.config.obfuscator!r} with "
                            f"{context.config.obfuscator_args or 'no arguments'} has none")
        self.quantiser = quantiser
        self.levels = int(quantiser.levels)
        self.stride = int(getattr(context.obfuscator, "stride"))  # noqa: B009  (a module attribute torch types as Tensor | Module)

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return []

    def update(self, batch: Batch, z: torch.Tensor) -> dict[str, float]:  # noqa: ARG002
        return {}  # nothing to learn

    def o_term(self, batch: Batch, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:  # noqa: ARG002
        u = self.quantiser.last_latent
        if u is None:
            raise VeilError("the rate term found no latent: the obfuscator has not run in training mode")
        soft = soft_channel_entropy(u, self.levels, self.bandwidth)
        with torch.no_grad():
            q = torch.round(u.detach().clamp(0, 1) * (self.levels - 1)) / (self.levels - 1)
            hard = channel_entropy(q, self.levels)
            gh, gw = latent_grid((640, 480), self.stride)
        term = soft.mean()
        return term, {"rate_soft_bits_per_value": term.item(), "rate_bits_per_value": hard.mean().item(),
                      "rate_bits_per_frame_640x480": hard.sum().item() * gh * gw}

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> None:
        """Nothing to restore: the term has no state."""
