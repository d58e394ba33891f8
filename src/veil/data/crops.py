"""Person crops of the privacy audit: where they are (frame, box) and what they are labelled
with (identity, attacker split), plus cutting them out of (transformed) full frames.

Crops are always cut from full frames *after* a transform is applied, as an adversary who
receives the transformed video would cut them, never transformed crop by crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import roi_align

MIN_CROP_SIDE = 20  # de-coninck-2024 4.2: smaller crops are too small to carry attributes


@dataclass
class CropSet:
    """N crops as parallel arrays.

    ``frame``: position of the crop's frame in its FrameDataset; ``box``: (N, 4) xyxy pixels
    (a pseudo-label box of the ORIGINAL frame); ``identity``: pseudo-identity (-1: none);
    ``split``: "train" / "test" attacker split ("" when not assigned); ``time``: seconds.
    """

    frame: np.ndarray
    box: np.ndarray
    identity: np.ndarray
    split: np.ndarray
    time: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, keep: np.ndarray) -> CropSet:
        """The crops selected by a boolean mask or an index array."""
        return CropSet(self.frame[keep], self.box[keep], self.identity[keep], self.split[keep],
                       self.time[keep], {k: v[keep] for k, v in self.extra.items()})

    @staticmethod
    def empty() -> CropSet:
        return CropSet(np.zeros(0, int), np.zeros((0, 4), np.float32), np.zeros(0, int),
                       np.zeros(0, "<U5"), np.zeros(0, float))

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"frame": self.frame.tolist(), "box": np.round(self.box, 2).tolist(),
                "identity": self.identity.tolist(), "split": self.split.tolist(),
                "time": self.time.tolist()}


def big_enough(boxes: np.ndarray, min_side: int = MIN_CROP_SIDE) -> np.ndarray:
    """Boolean mask of boxes at least ``min_side`` pixels wide and high."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return ((boxes[:, 2] - boxes[:, 0]) >= min_side) & ((boxes[:, 3] - boxes[:, 1]) >= min_side)


def all_crops(dataset, min_side: int = MIN_CROP_SIDE) -> CropSet:
    """Every pseudo-label box of ``dataset`` (a FrameDataset) at least ``min_side`` wide and high."""
    times = {f["name"]: float(f["time"]) for f in dataset.manifest["frames"]}
    frame, box, time = [], [], []
    for i, target in enumerate(dataset.targets):
        b = target.boxes.numpy().reshape(-1, 4)
        b = b[big_enough(b, min_side)]
        frame += [i] * len(b)
        box.append(b)
        time += [times.get(dataset.names[i], float(i))] * len(b)
    n = len(frame)
    return CropSet(np.asarray(frame, int), np.concatenate(box).astype(np.float32) if box else np.zeros((0, 4)),
                   np.full(n, -1), np.full(n, "", dtype="<U5"), np.asarray(time, float))


@torch.no_grad()
def cut_crops(frames: torch.Tensor, crops: CropSet, size: tuple[int, int], batch: int = 64) -> np.ndarray:
    """Cut ``crops`` out of ``frames`` ((F, 3, H, W), uint8 or float in [0, 1]) and resize each to
    ``size`` = (width, height) with RoIAlign (bilinear, antialiased by sampling); uint8 (N, 3, h, w)."""
    w, h = size
    out = np.zeros((len(crops), 3, h, w), np.uint8)
    for start in range(0, len(crops), batch):
        idx = np.arange(start, min(start + batch, len(crops)))
        fids = crops.frame[idx]
        uniq, inv = np.unique(fids, return_inverse=True)
        imgs = frames[torch.as_tensor(uniq)]
        imgs = imgs.float().div(255) if imgs.dtype == torch.uint8 else imgs.float()
        rois = torch.cat([torch.as_tensor(inv, dtype=torch.float32)[:, None],
                          torch.as_tensor(crops.box[idx], dtype=torch.float32)], 1)
        # sampling_ratio -1: adaptive, so large boxes are averaged rather than aliased
        patches = roi_align(imgs, rois, output_size=(h, w), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        out[idx] = patches.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return out
