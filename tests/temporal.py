"""A small, real temporal obfuscator for the plumbing tests (until the registered ``bdq`` is merged).

It reads clips of two frames (t - 1, t) and mixes frame t with the motion since frame t - 1
through one learned convolution; ``gain`` scales the motion so a test can tell a clip-wise
application from a frame-wise one.
"""

from __future__ import annotations

import torch
from torch import nn

from veil.obfuscators import OBFUSCATORS, Obfuscator

NAME = "test_two_frame"


class TwoFrameMotion(Obfuscator):
    clip = 2
    transmitted = "a learned mix of each frame and its motion"
    attacked = "the same image"

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain
        self.mix = nn.Conv2d(6, 3, kernel_size=3, padding=1)
        self.progress: list[float] = []  # every fraction set_progress was given

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous, current = x[:, 0], x[:, -1]
        return torch.sigmoid(self.mix(torch.cat([current, self.gain * (current - previous)], dim=1)))

    def regulariser(self) -> torch.Tensor:
        return 1e-3 * self.mix.weight.square().sum()

    def set_progress(self, fraction: float) -> None:
        self.progress.append(fraction)


def register(monkeypatch) -> str:
    """Register the test obfuscator for one test (``monkeypatch`` removes it afterwards)."""
    monkeypatch.setitem(OBFUSCATORS._factories, NAME, TwoFrameMotion)
    return NAME
