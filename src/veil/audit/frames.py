"""The audit's frames: one table of every frame it attacks (train subset, val, test), and the
whole-frame transforms (obfuscator, baselines) applied to it before any crop is cut.

A temporal obfuscator gets each audited frame's clip; the predecessors of a subsampled
split's frames are read from the dataset's frame files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from veil.data.dataset import FrameDataset, clip_names, load_frames, obfuscator_inputs
from veil.obfuscators.base import clip_length
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

    def clips(self, indices: list[int], length: int):
        """Float clips ``(B, length, 3, H, W)`` ending at ``indices`` (a temporal obfuscator's input):
        predecessors come from this view when it holds them, else from the dataset's frame files
        (a subsampled split does not hold them)."""
        position = {n: i for i, n in enumerate(self.names)}
        clips = clip_names(self.manifest, [self.names[i] for i in indices], length)
        missing = sorted({n for clip in clips for n in clip if n not in position})
        loaded = load_frames([self.root / "frames" / n for n in missing]) if missing else None
        frames = [self.images[position[n]] if n in position else loaded[missing.index(n)]  # type: ignore[index]
                  for clip in clips for n in clip]
        images = torch.stack(frames).float().div_(255)
        return images.view(len(indices), length, *images.shape[1:]), [self.targets[i] for i in indices]

    def subset(self, positions: np.ndarray) -> FrameView:
        pos = [int(p) for p in positions]
        return FrameView(self.images[pos], [self.targets[p] for p in pos], [self.names[p] for p in pos],
                         self.manifest, self.root)

    def with_images(self, images: torch.Tensor) -> FrameView:
        return replace(self, images=images)

    @staticmethod
    def of(ds: FrameDataset) -> FrameView:
        return FrameView(ds.images, ds.targets, ds.names, ds.manifest, ds.root)


def concat(views: list[FrameView]) -> FrameView:
    """Frames of several splits of one dataset as one view."""
    return FrameView(torch.cat([v.images for v in views]), [t for v in views for t in v.targets],
                     [n for v in views for n in v.names], views[0].manifest, views[0].root)


@dataclass
class AuditFrames:
    """Every frame the audit attacks, in one view, with the positions of each split's frames.

    Transforming this one view per method means every crop of every task is cut from the
    same transformed frames, and no frame is transformed twice.
    """

    view: FrameView
    positions: dict[str, np.ndarray]

    def split(self, *names: str) -> tuple[FrameView, np.ndarray]:
        """The frames of ``names`` (in that order) as a view, and their positions in ``view``."""
        pos = np.concatenate([self.positions[n] for n in names])
        return self.view.subset(pos), pos

    @staticmethod
    def load(dataset_dir: str | Path, splits: dict[str, int | None]) -> AuditFrames:
        """``splits``: split name -> number of evenly spaced frames to keep (None: all)."""
        views, positions, start = [], {}, 0
        for name, k in splits.items():
            ds = FrameDataset(dataset_dir, name)
            view = FrameView.of(ds).subset(evenly(len(ds), k))
            views.append(view)
            positions[name] = np.arange(start, start + len(view))
            start += len(view)
        return AuditFrames(concat(views), positions)


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
    out, length = [], clip_length(transform)
    for start in range(0, len(view), batch_size):
        indices = list(range(start, min(start + batch_size, len(view))))
        images = obfuscator_inputs(view, indices, length)[0].to(device)  # clips for a temporal obfuscator
        boxes = [t.boxes.to(device) for t in view.targets[start : start + batch_size]]
        out.append(transform(images, boxes).clamp(0, 1).mul(255).round().byte().cpu())
    return torch.cat(out) if out else view.images.clone()


def obfuscator_transform(obfuscator: nn.Module) -> Transform:
    """O as an audit transform; its ``clip`` tells ``transform_frames`` to hand a temporal O clips."""
    obfuscator.eval()

    def transform(x: torch.Tensor, _boxes: list[torch.Tensor]) -> torch.Tensor:
        return obfuscator(x)

    transform.clip = clip_length(obfuscator)  # type: ignore[attr-defined]
    return transform


def baseline_transform(baseline: Baseline, use_pseudo_labels: bool) -> Transform:
    """Detect-then-anonymise baselines reuse the pseudo-label boxes when they are exactly the
    detector's boxes on the original frames; otherwise the detector runs on each frame."""
    if baseline.needs_detector and use_pseudo_labels:
        return lambda x, boxes: baseline(x, boxes)
    return lambda x, _boxes: baseline(x)
