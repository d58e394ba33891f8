"""Frame subsets and whole-frame transforms shared by the audit and its baseline sweeps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from veil.data.dataset import FrameDataset
from veil.obfuscators.baselines import Baseline

Transform = Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]

@dataclass
class FrameView:
    """A subset of a FrameDataset's frames (uint8) that ``detection_ap`` accepts."""

    images: torch.Tensor
    targets: list
    names: list[str]
    manifest: dict
    root: Path

    def __len__(self) -> int:
        return len(self.names)

    def batch(self, indices: list[int]):
        return self.images[indices].float().div_(255), [self.targets[i] for i in indices]

    def subset(self, positions: np.ndarray) -> FrameView:
        pos = [int(p) for p in positions]
        return FrameView(self.images[pos], [self.targets[p] for p in pos], [self.names[p] for p in pos],
                         self.manifest, self.root)

    def with_images(self, images: torch.Tensor) -> FrameView:
        return replace(self, images=images)

    @staticmethod
    def of(ds: FrameDataset) -> FrameView:
        return FrameView(ds.images, ds.targets, ds.names, ds.manifest, ds.root)


def evenly(n: int, k: int | None) -> np.ndarray:
    """``k`` evenly spaced positions out of ``n`` (all when k is None or >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


@torch.no_grad()
def transform_frames(transform: Transform | None, view: FrameView, batch_size: int = 8,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 frames of ``view`` after ``transform`` (8-bit, as transmitted video would be)."""
    if transform is None:
        return view.images
    out = []
    for start in range(0, len(view), batch_size):
        images = view.images[start : start + batch_size].float().div(255).to(device)
        boxes = [t.boxes.to(device) for t in view.targets[start : start + batch_size]]
        out.append(transform(images, boxes).clamp(0, 1).mul(255).round().byte().cpu())
    return torch.cat(out) if out else view.images.clone()


def obfuscator_transform(obfuscator: nn.Module) -> Transform:
    obfuscator.eval()
    return lambda x, _boxes: obfuscator(x)


def baseline_transform(baseline: Baseline, use_pseudo_labels: bool) -> Transform:
    """Detect-then-anonymise baselines reuse the pseudo-label boxes when they are exactly the
    detector's boxes on the original frames; otherwise the detector runs on each frame."""
    if baseline.needs_detector and use_pseudo_labels:
        return lambda x, boxes: baseline(x, boxes)
    return lambda x, _boxes: baseline(x)
