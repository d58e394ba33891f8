"""What a model costs: parameters, MACs (ptflops) and median CPU latency per 640x480 frame.

This sits below both the audit and deployment, so ``veil audit`` (the figure next to the privacy
numbers) and ``veil bench edge`` / ``veil export`` (the controlled benchmark and the model card)
count and time the same way without importing each other.
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version

import torch
from torch import nn

from veil.obfuscators.base import clip_length

FRAME_SIZE = (640, 480)  # (width, height)
MAC_COUNTER = f"ptflops {version('ptflops')} (aten backend: convolutions and matrix products)"


def count_macs(model: nn.Module, size: tuple[int, int] = FRAME_SIZE) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of one ``size`` (width, height) RGB frame (a temporal
    obfuscator: one clip ending at it), by ptflops.

    ptflops' aten backend counts every convolution and matrix product the forward pass
    dispatches, functional ones included (BDQ's blur and the lensless mask are ``F.conv2d``
    calls that its module-hook backend never sees); element-wise ops, norms and resampling are
    not multiply-accumulates and are left out."""
    from ptflops import get_model_complexity_info

    w, h = size
    length = clip_length(model)
    shape = (length, 3, h, w) if length > 1 else (3, h, w)
    with contextlib.redirect_stdout(io.StringIO()):  # ptflops prints warnings for unknown modules
        macs, _ = get_model_complexity_info(model, shape, as_strings=False,
                                            print_per_layer_stat=False, backend="aten")
    # ptflops counts trainable parameters only, and a frozen detector has none.
    return int(macs), sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, then give the process back the threads it had."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def median_ms(fn: Callable[[], object], repeats: int, warmup: int) -> dict:
    """Median, min and max wall time of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2), "repeats": repeats}


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
    ``measured`` says where the latency was taken, for the reader of the figure (this is not a
    controlled benchmark: ``veil bench edge`` is)."""
    model = OneFrame(copy.deepcopy(obfuscator).cpu().eval())
    macs, params = count_macs(model, size)
    frame = torch.rand(1, 3, size[1], size[0])
    with torch_threads(1):
        latency = median_ms(lambda: model(frame), repeats, warmup)
    return {"parameters": params, "macs": macs, "mac_counter": MAC_COUNTER, "frame_size": list(size),
            "latency_ms": latency["median_ms"], "latency": {**latency, "threads": 1, "device": "cpu",
                                                           "measured": measured}}
