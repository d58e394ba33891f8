"""Real vtest frames for tests that need a few frames without a prepared dataset."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch


def vtest_frames(path: Path, indices: list[int], size: tuple[int, int] = (640, 480)) -> torch.Tensor:
    """Frames ``indices`` of vtest (native 10 fps) resized to ``size`` (w, h): float (N, 3, H, W) in [0, 1]."""
    from veil.data.video import read_video, resize

    wanted = set(indices)
    frames = {f.index: resize(f.image, size)
              for f in itertools.takewhile(lambda f: f.index <= max(indices), read_video(path)) if f.index in wanted}
    return torch.from_numpy(np.stack([frames[i] for i in indices])).permute(0, 3, 1, 2).float().div(255)
