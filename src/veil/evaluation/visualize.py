"""Side-by-side pictures of frames with the detector's boxes drawn on them."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from veil.detectors import FrozenDetector


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 RGB."""
    return image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()


def draw_boxes(image: np.ndarray, boxes: torch.Tensor, scores: torch.Tensor, title: str) -> np.ndarray:
    out = np.ascontiguousarray(image.copy())
    for box, score in zip(boxes.tolist(), scores.tolist()):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 2)
        cv2.putText(out, f"{score:.2f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
    cv2.rectangle(out, (0, 0), (out.shape[1], 24), (0, 0, 0), -1)
    label = f"{title}: {len(boxes)} people"
    cv2.putText(out, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1)
    return out


@torch.no_grad()
def side_by_side(views: dict[str, torch.Tensor], detector: FrozenDetector, conf: float) -> np.ndarray:
    """One row of panels: each (3, H, W) view with the detector's boxes at ``conf`` drawn."""
    panels = []
    for title, view in views.items():
        det = detector.detect(view[None].clamp(0, 1), conf=conf)[0]
        panels.append(draw_boxes(to_uint8(view), det.boxes.cpu(), det.scores.cpu(), title))
    return np.concatenate(panels, axis=1)
