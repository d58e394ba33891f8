"""What an obfuscator costs the camera: parameters, MACs and CPU latency per 640x480 frame.

MACs come from ptflops (``veil.deployment.export.count_macs``); latency is the median of a few
timed forward passes on one thread, measured wherever this runs (inside the audit, on the
audit's machine, under whatever else that machine is doing). ``veil bench edge`` is the
controlled benchmark; this is the figure that sits next to the privacy numbers.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from veil.deployment.bench import median_ms
from veil.deployment.export import MAC_COUNTER, count_macs
from veil.obfuscators.base import clip_length

FRAME_SIZE = (640, 480)  # (width, height)


class OneFrame(nn.Module):
    """A temporal obfuscator fed one frame as the contract's first clip of a video (the frame
    repeated T times), so it is counted and timed per frame like a frame obfuscator."""

    def __init__(self, obfuscator: nn.Module) -> None:
        super().__init__()
        self.obfuscator = obfuscator
        self.length = clip_length(obfuscator)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        if self.length == 1:
            return self.obfuscator(frame)
        return self.obfuscator(frame.unsqueeze(1).expand(-1, self.length, -1, -1, -1))


@torch.no_grad()
def obfuscator_cost(obfuscator: nn.Module, size: tuple[int, int] = FRAME_SIZE, repeats: int = 5,
                    warmup: int = 1, measured: str = "inside the audit, on its machine") -> dict:
    """Parameters, MACs and 1-thread CPU latency (median of ``repeats``) of one ``size`` frame;
    ``measured`` says where the latency was taken, for the reader of the figure."""
    model = OneFrame(copy.deepcopy(obfuscator).cpu().eval())
    macs, params = count_macs(model, size)
    frame = torch.rand(1, 3, size[1], size[0])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        latency = median_ms(lambda: model(frame), repeats, warmup)
    finally:
        torch.set_num_threads(previous)
    return {"parameters": params, "macs": macs, "mac_counter": MAC_COUNTER, "frame_size": list(size),
            "latency_ms": latency["median_ms"], "latency": {**latency, "threads": 1, "device": "cpu",
                                                           "measured": measured}}
