"""BDQ (nagahara; Kumawat & Nagahara, ECCV 2022): Blur, Difference of frames, learned Quantisation.

A temporal obfuscator with ``clip = k + 1`` frames (the frame to obfuscate last):

1. **Blur**: a Gaussian blur whose sigma is learned, applied per RGB channel (a separable
   conv whose kernel is computed from sigma; edges replicated).
2. **Difference**: ``d = blur(frame_t) - blur(frame_{t-k})``, in [-1, 1].
3. **Quantisation**: ``levels`` output values (16 by default) with learned thresholds.
   Training uses the soft quantiser ``sum_j sigmoid(T (x - theta_j))``; its temperature T is
   annealed from ``temperature_start`` to ``temperature_end`` by ``set_progress``. In eval
   mode it is the hard step function, so the output has exactly ``levels`` values.

Unlike the released code, no frame is normalised by its batch's min and max: the difference
is mapped to [0, 1] by a fixed range (``0.5 + gain * d / 2``, clamped, with a learned
``gain``), so a frame's output depends on its own clip only, and a camera can run it on one
frame at a time.

What reaches the detector (a 3-channel image in [0, 1], at the input's size):

* ``variant="motion"``: per RGB channel, ``Q_m(0.5 + gain * d / 2)``: the quantised motion
  image, mid-grey (0.5) where nothing moved, brighter / darker where a channel got brighter
  / darker. No static content survives.
* ``variant="frame+motion"``: per RGB channel, ``(1 - a) * Q_f(blur(frame_t)) + a *
  Q_m(0.5 + gain * d / 2)``: the blurred frame quantised to ``levels`` values by its own
  learned quantiser, mixed with the motion image with a learned weight ``a`` in (0, 1)
  (initially 0.5). The detector gets the scene's coarse appearance and the motion.

Parameters: ``levels`` thresholds per quantiser, one sigma, one gain (and one mix weight):
18 for ``motion`` and 35 for ``frame+motion`` at 16 levels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from veil.obfuscators.base import Obfuscator
from veil.obfuscators.registry import OBFUSCATORS

VARIANTS = ("motion", "frame+motion")


class LearnedQuantiser(nn.Module):
    """Maps [0, 1] to ``levels`` values in [0, 1] with learned, always ordered thresholds.

    The thresholds are the cumulative sums of ``levels`` softmax-positive bin widths on the
    scale [0, levels - 1], so they stay strictly increasing and strictly inside the range:
    over inputs spanning [0, 1] the hard quantiser yields exactly ``levels`` values. They start
    at the uniform quantiser's midpoints ``0.5, 1.5, ..., levels - 1.5``.
    """

    def __init__(self, levels: int = 16, temperature: float = 1.0) -> None:
        super().__init__()
        if levels < 2:
            raise ValueError(f"a quantiser needs at least 2 levels, got {levels}")
        self.levels = levels
        self.temperature = temperature
        widths = torch.ones(levels)
        widths[0] = widths[-1] = 0.5
        self.bin_logits = nn.Parameter(widths.log())

    def thresholds(self) -> torch.Tensor:
        widths = torch.softmax(self.bin_logits, 0) * (self.levels - 1)
        return torch.cumsum(widths, 0)[:-1]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        x = (u.clamp(0, 1) * (self.levels - 1)).unsqueeze(-1)
        theta = self.thresholds()
        # soft while training (annealed temperature), the hard step at eval: exactly ``levels`` values
        steps = torch.sigmoid(self.temperature * (x - theta)) if self.training else (x > theta).to(x.dtype)
        return steps.sum(-1) / (self.levels - 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with a (differentiable) scalar ``sigma``."""
    r = kernel // 2
    t = torch.arange(kernel, dtype=x.dtype, device=x.device) - r
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, kernel).expand(c, 1, 1, kernel), groups=c)
    return F.conv2d(x, g.view(1, 1, kernel, 1).expand(c, 1, kernel, 1), groups=c)


class BDQ(Obfuscator):
    """Blur, difference of frames t and t - k, learned quantisation (see the module docstring).

    Args:
        k: frame offset of the difference; the clip has ``k + 1`` frames.
        levels: quantisation levels of each quantiser.
        variant: ``"motion"`` or ``"frame+motion"``.
        sigma: initial blur sigma in pixels (learned; kept in [0.3, kernel / 4]).
        kernel: blur kernel size (odd).
        gain: initial gain of the difference before the fixed [-1, 1] -> [0, 1] map (learned).
        temperature_start / temperature_end: the soft quantiser's temperature at the start and
            end of training (geometric annealing through ``set_progress``).
    """

    def __init__(
        self,
        k: int = 1,
        levels: int = 16,
        variant: str = "motion",
        sigma: float = 2.0,
        kernel: int = 13,
        gain: float = 2.0,
        temperature_start: float = 1.0,
        temperature_end: float = 100.0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown BDQ variant {variant!r} (known: {', '.join(VARIANTS)})")
        if k < 1:
            raise ValueError(f"the frame offset k must be >= 1, got {k}")
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"the blur kernel must be odd and >= 3, got {kernel}")
        self.clip = k + 1
        self.k = k
        self.variant = variant
        self.kernel = kernel
        self.temperatures = (float(temperature_start), float(temperature_end))
        self.max_sigma = kernel / 4
        # sigma = 0.3 + (max - 0.3) * sigmoid(raw): bounded, so the kernel never truncates it badly
        frac = (min(max(sigma, 0.31), self.max_sigma - 0.01) - 0.3) / (self.max_sigma - 0.3)
        self.sigma_raw = nn.Parameter(torch.tensor(math.log(frac / (1 - frac))))
        self.gain = nn.Parameter(torch.tensor(float(gain)))
        self.motion_quantiser = LearnedQuantiser(levels, temperature_start)
        if variant == "frame+motion":
            self.frame_quantiser = LearnedQuantiser(levels, temperature_start)
            self.mix_raw = nn.Parameter(torch.zeros(()))
        self.transmitted = ("the quantised motion image (blurred frame t minus blurred frame t-k, "
                            f"{levels} levels per channel)" if variant == "motion" else
                            f"a mix of the blurred frame quantised to {levels} levels and the quantised motion image")
        self.attacked = self.transmitted

    def sigma(self) -> torch.Tensor:
        return 0.3 + (self.max_sigma - 0.3) * torch.sigmoid(self.sigma_raw)

    def set_progress(self, fraction: float) -> None:
        t0, t1 = self.temperatures
        temperature = t0 * (t1 / t0) ** min(max(fraction, 0.0), 1.0)
        for q in (self.motion_quantiser, getattr(self, "frame_quantiser", None)):
            if q is not None:
                q.temperature = temperature

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() != 5 or clip.shape[1] != self.clip:
            raise ValueError(f"BDQ takes clips (B, {self.clip}, 3, H, W), got {tuple(clip.shape)}")
        b = clip.shape[0]
        pair = torch.cat([clip[:, -1], clip[:, -1 - self.k]], 0)  # (2B, 3, H, W): frame t, frame t-k
        blurred = gaussian_blur(pair, self.sigma(), self.kernel)
        now, before = blurred[:b], blurred[b:]
        motion = self.motion_quantiser(0.5 + self.gain * (now - before) / 2)
        if self.variant == "motion":
            return motion
        a = torch.sigmoid(self.mix_raw)
        return (1 - a) * self.frame_quantiser(now) + a * motion


    def latent_bits_per_frame(self, frame_size: tuple[int, int]) -> float:
        """The output is a function of one (motion) or two (frame+motion) images quantised to
        ``levels`` values per RGB value at full resolution."""
        w, h = frame_size
        images = 1 if self.variant == "motion" else 2
        return images * 3 * h * w * math.log2(self.motion_quantiser.levels)


@OBFUSCATORS.register("bdq")
def bdq(k: int = 1, levels: int = 16, variant: str = "motion", sigma: float = 2.0, kernel: int = 13,
        gain: float = 2.0, temperature_start: float = 1.0, temperature_end: float = 100.0) -> BDQ:
    """BDQ: ``variant="motion"`` (the bare quantised difference) or ``"frame+motion"``."""
    return BDQ(k, levels, variant, sigma, kernel, gain, temperature_start, temperature_end)
