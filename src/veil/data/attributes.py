"""Pseudo-attributes of person crops, from deterministic rules on the ORIGINAL pixels, and a
loader for user-provided attribute labels that replace them.

Rules (HSV with H in degrees, S and V in [0, 1]; regions relative to the box):

* regions: upper body = rows 15-50% of the box height, lower body = rows 55-90%, both
  restricted to the central 20-80% of the width (less background);
* every region pixel gets one colour class: ``dark`` (V < 0.25), ``light`` (S < 0.2 and
  V > 0.7), ``grey`` (S < 0.2), else by hue: ``red`` (H < 20 or H >= 330), ``yellow``
  (20-70, includes orange and brown), ``green`` (70-170), ``blue`` (170-260), ``purple``
  (260-330, includes pink);
* ``upper_<class>`` / ``lower_<class>`` is 1 for the region's majority class (one-hot);
* contrast: ``upper_lighter`` is 1 when the upper region's mean V exceeds the lower's by
  more than 0.1, ``lower_lighter`` when the reverse holds.

As in de-coninck-2024 4.2, attributes where more than 99% of samples share one value are
dropped (:func:`drop_unbalanced`) and crops under 20x20 pixels are never used.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.color import rgb2hsv
from torchvision.ops import box_iou

from veil.data.crops import CropSet
from veil.errors import VeilError

COLOURS = ("dark", "grey", "light", "red", "yellow", "green", "blue", "purple")
UPPER_ROWS, LOWER_ROWS, COLS = (0.15, 0.50), (0.55, 0.90), (0.20, 0.80)
CONTRAST_V = 0.1
ATTRIBUTE_NAMES = tuple(f"upper_{c}" for c in COLOURS) + tuple(f"lower_{c}" for c in COLOURS) + (
    "upper_lighter", "lower_lighter")


@dataclass
class AttributeTable:
    """Binary attributes (N, M) of N crops, with attribute names."""

    names: list[str]
    values: np.ndarray

    def select(self, keep: np.ndarray) -> AttributeTable:
        return AttributeTable(self.names, self.values[keep])


def colour_classes(hsv: np.ndarray) -> np.ndarray:
    """Colour class index (into COLOURS) of every pixel of an (..., 3) HSV array in [0, 1]."""
    h, s, v = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    hue = np.select([(h < 20) | (h >= 330), h < 70, h < 170, h < 260], [3, 4, 5, 6], default=7)
    achromatic = np.where(v > 0.7, 2, 1)
    cls = np.where(s < 0.2, achromatic, hue)
    return np.where(v < 0.25, 0, cls)


def _region(image: np.ndarray, box: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    h, w = y2 - y1, x2 - x1
    H, W = image.shape[:2]
    r0, r1 = int(np.clip(y1 + rows[0] * h, 0, H - 1)), int(np.clip(np.ceil(y1 + rows[1] * h), 1, H))
    c0, c1 = int(np.clip(x1 + COLS[0] * w, 0, W - 1)), int(np.clip(np.ceil(x1 + COLS[1] * w), 1, W))
    return image[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)]


def crop_attributes(rgb_frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The ATTRIBUTE_NAMES vector (0/1) of one box on an (H, W, 3) uint8 RGB frame."""
    out = np.zeros(len(ATTRIBUTE_NAMES), np.uint8)
    means = []
    for offset, rows in ((0, UPPER_ROWS), (len(COLOURS), LOWER_ROWS)):
        region = rgb2hsv(_region(rgb_frame, box, rows))  # only the region: whole frames are slow
        counts = np.bincount(colour_classes(region).ravel(), minlength=len(COLOURS))
        out[offset + int(np.argmax(counts))] = 1  # ties go to the earlier (darker) class
        means.append(float(region[..., 2].mean()))
    diff = means[0] - means[1]
    out[-2] = diff > CONTRAST_V
    out[-1] = diff < -CONTRAST_V
    return out


def pseudo_attributes(frames: torch.Tensor, crops: CropSet) -> AttributeTable:
    """Pseudo-attributes of ``crops`` from the ORIGINAL ``frames`` (uint8 (F, 3, H, W))."""
    values = np.zeros((len(crops), len(ATTRIBUTE_NAMES)), np.uint8)
    for f in np.unique(crops.frame):
        rgb = frames[int(f)].permute(1, 2, 0).numpy()
        for i in np.flatnonzero(crops.frame == f):
            values[i] = crop_attributes(rgb, crops.box[i])
    return AttributeTable(list(ATTRIBUTE_NAMES), values)


def drop_unbalanced(table: AttributeTable, max_share: float = 0.99) -> AttributeTable:
    """Keep only attributes whose majority value covers at most ``max_share`` of the samples."""
    if len(table.values) == 0:
        return table
    share = table.values.mean(0)
    keep = np.maximum(share, 1 - share) <= max_share
    return AttributeTable([n for n, k in zip(table.names, keep) if k], table.values[:, keep])


def load_user_attributes(
    csv_path: str | Path, crops: CropSet, frame_names: list[str], iou_threshold: float = 0.5,
) -> tuple[AttributeTable, np.ndarray]:
    """Attributes of ``crops`` from a user CSV (columns frame, x1, y1, x2, y2, then 0/1 columns).

    A CSV row labels the crop on the same frame (by file name, ``frame_names[crop.frame]``)
    whose pseudo-label box has the highest IoU >= ``iou_threshold`` with it. Returns the
    table for the matched crops and the boolean mask of which crops were matched.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise VeilError(f"attribute CSV not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        missing = [c for c in ("frame", "x1", "y1", "x2", "y2") if c not in fields]
        if missing:
            raise VeilError(f"{path}: missing column(s) {', '.join(missing)}")
        names = [c for c in fields if c not in ("frame", "x1", "y1", "x2", "y2")]
        if not names:
            raise VeilError(f"{path}: no attribute columns after frame, x1, y1, x2, y2")
        rows = list(reader)
    values = np.zeros((len(crops), len(names)), np.uint8)
    matched = np.zeros(len(crops), bool)
    by_name: dict[str, list[int]] = {}
    for i, f in enumerate(crops.frame):
        by_name.setdefault(frame_names[int(f)], []).append(i)
    for line, row in enumerate(rows, start=2):
        try:
            box = torch.tensor([[float(row[c]) for c in ("x1", "y1", "x2", "y2")]])
            attrs = [int(float(row[n])) for n in names]
        except (TypeError, ValueError):
            raise VeilError(f"{path}:{line}: box and attribute values must be numbers") from None
        if any(a not in (0, 1) for a in attrs):
            raise VeilError(f"{path}:{line}: attribute values must be 0 or 1")
        idx = np.asarray(by_name.get(Path(row["frame"]).name, []), int)
        if len(idx) == 0:
            continue
        iou = box_iou(box, torch.as_tensor(crops.box[idx], dtype=torch.float32))[0]
        best = int(torch.argmax(iou))
        if float(iou[best]) >= iou_threshold:
            values[idx[best]] = attrs
            matched[idx[best]] = True
    if not matched.any():
        raise VeilError(f"{path}: no row matched a pseudo-label box (IoU >= {iou_threshold})")
    return AttributeTable(names, values[matched]), matched
