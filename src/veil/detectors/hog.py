"""OpenCV's HOG people detector (Dalal and Triggs' HOG features + linear SVM) as a frozen Veil detector.

It can *evaluate* an obfuscator (does a detector the obfuscator never saw still find people?) but
not *train* one: HOG's gradient histograms and window grouping are not differentiable, so
:meth:`HogDetector.loss` raises and ``trainable`` is False.

Scores. ``detectMultiScale`` returns, per grouped window, the SVM margin w.x + b (OpenCV's rule:
a person where the margin exceeds ``hitThreshold`` = 0). Veil maps it to [0, 1] with the logistic
``1 / (1 + exp(-margin))``: monotone, so rankings and AP are unchanged, and OpenCV's own decision
boundary lands at 0.5 (Platt scaling with unit slope, uncalibrated). Windows are always searched at
margin > 0: a lower ``hitThreshold`` lets the grouping merge neighbouring weak windows into boxes
that fit nobody (on vtest, F1 against YOLO fell from 0.71 to 0.39), so ``conf`` below 0.5 returns
the same boxes as 0.5.

Size. The SVM window is 64x128 pixels with the person about 96 pixels tall; the pedestrians of a
640x480 surveillance frame are 50-100 pixels tall, so frames are upscaled by ``upscale`` (default
2) before the search and boxes scaled back (on 12 vtest frames: F1 0.73 at 2x against 0.05 at 1x).

OpenCV 5 moved HOG to the contrib build: ``pip install opencv-contrib-python-headless`` of the same
version as the installed OpenCV.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

from veil.detectors.base import Detections, FrozenDetector, Target
from veil.detectors.registry import DETECTORS
from veil.errors import VeilError

#: the SVM window (width, height) of a coefficient vector, by its length (descriptor size + bias)
WINDOWS = {3781: (64, 128), 1981: (48, 96)}


def _cv2():
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        raise VeilError(f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to the contrib build): "
                        "pip install opencv-contrib-python-headless of the same version")
    return cv2


def logistic(margin: np.ndarray) -> np.ndarray:
    """SVM margin -> score in (0, 1); margin 0 (OpenCV's decision boundary) -> 0.5."""
    return 1.0 / (1.0 + np.exp(-np.asarray(margin, dtype=np.float64)))


def _coefficients(weights: str | None) -> np.ndarray:
    """The SVM: OpenCV's default people detector (None or "default"), Daimler's ("daimler"), or a
    safetensors file whose tensor ``svm`` holds the coefficients of a 64x128 or 48x96 window."""
    cv2 = _cv2()
    if weights in (None, "default"):
        return np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), np.float32).reshape(-1)
    if weights == "daimler":
        return np.asarray(cv2.HOGDescriptor_getDaimlerPeopleDetector(), np.float32).reshape(-1)
    path = Path(weights)
    if not path.is_file():
        raise VeilError(f"HOG detector weights not found: {path} (or use 'default' or 'daimler')")
    try:
        from safetensors.torch import load_file

        svm = load_file(str(path))["svm"].float().reshape(-1).numpy()
    except Exception as exc:  # noqa: BLE001  (any unreadable file is the same user error)
        raise VeilError(f"cannot read HOG weights {path} (a safetensors file with an 'svm' tensor): {exc}") from None
    if len(svm) not in WINDOWS:
        raise VeilError(f"HOG weights {path} have {len(svm)} coefficients; a 64x128 window needs 3781, 48x96 1981")
    return svm


class HogSVM(nn.Module):
    """The SVM coefficients as a buffer, so the detector has weights to fingerprint and freeze."""

    def __init__(self, svm: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("svm", torch.from_numpy(np.ascontiguousarray(svm, np.float32)))


class HogDetector(FrozenDetector):
    """OpenCV's ``HOGDescriptor.detectMultiScale``; evaluation only (no loss)."""

    trainable = False
    # Margin ~1: the threshold that best agrees with YOLO's pseudo-labels on 40 vtest frames
    # (bench/hog_threshold.py -> bench/results/hog-threshold.json): F1 0.69, precision 0.91,
    # recall 0.56 at 0.73, against F1 0.64 and precision 0.71 at OpenCV's own boundary (0.5).
    pseudo_label_threshold = 0.73
    nms_iou = 0.5  # OpenCV's grouping can leave a box nested in another: one person, one box

    def __init__(self, svm: np.ndarray, name: str = "hog", spec: dict | None = None, upscale: float = 2.0,
                 win_stride: int = 8, scale: float = 1.05) -> None:
        super().__init__(HogSVM(svm), name, spec)
        if upscale <= 0 or win_stride < 1 or scale <= 1.0:
            raise VeilError(f"HOG needs upscale > 0, win_stride >= 1 and scale > 1 "
                            f"(got {upscale}, {win_stride}, {scale})")
        self.upscale, self.win_stride, self.scale = float(upscale), int(win_stride), float(scale)
        cv2 = _cv2()
        width, height = WINDOWS[len(svm)]
        self._hog = cv2.HOGDescriptor((width, height), (16, 16), (8, 8), (8, 8), 9)
        self._hog.setSVMDetector(svm)

    def _detect_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """xyxy boxes (n, 4) in ``image`` pixels and SVM margins (n,) of one RGB uint8 image."""
        import cv2

        up = cv2.resize(image, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR) \
            if self.upscale != 1.0 else image
        stride = (self.win_stride, self.win_stride)
        rects, margins = self._hog.detectMultiScale(up, hitThreshold=0.0, winStride=stride, padding=(8, 8),
                                                    scale=self.scale)
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        return boxes, np.asarray(margins, np.float32).reshape(-1)

    def detect(self, images: torch.Tensor, conf: float = 0.001) -> list[Detections]:
        h, w = images.shape[-2:]
        pixels = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for image in pixels:
            boxes, margins = self._detect_one(np.ascontiguousarray(image))
            b = torch.from_numpy(boxes)
            s = torch.from_numpy(logistic(margins).astype(np.float32))
            if len(b):
                b = b.clamp(min=0).minimum(torch.tensor([w, h, w, h], dtype=b.dtype))
                keep = nms(b, s, self.nms_iou)
                b, s = b[keep], s[keep]
            keep = s >= conf
            out.append(Detections(b[keep].to(images.device), s[keep].to(images.device),
                                  torch.zeros(int(keep.sum()), dtype=torch.long, device=images.device)))
        return out

    def loss(self, images: torch.Tensor, targets: list[Target]) -> torch.Tensor:  # noqa: ARG002
        raise VeilError(f"the {self.name} detector is not differentiable: it can evaluate an obfuscator "
                        "(veil audit, utility across detectors) but cannot train one; train with a "
                        "trainable detector such as yolo")


@DETECTORS.register("hog")
def hog(weights: str | None = None, upscale: float = 2.0, win_stride: int = 8, scale: float = 1.05) -> HogDetector:
    """OpenCV's HOG people detector; ``weights``: None/"default", "daimler", or a safetensors SVM."""
    spec = {"name": "hog", "weights": weights, "upscale": upscale, "win_stride": win_stride, "scale": scale}
    if not math.isfinite(upscale):
        raise VeilError(f"HOG upscale must be a finite number, got {upscale}")
    return HogDetector(_coefficients(weights), "hog", spec, upscale, win_stride, scale)
