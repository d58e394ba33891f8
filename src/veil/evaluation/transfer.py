"""Utility that transfers: does a transform (obfuscator, baseline) keep people findable and
countable for detectors it never trained against? (de-coninck-2024 evaluates across detectors.)

Each detector labels the ORIGINAL frames itself, at its own pseudo-label threshold; its AP on the
transformed frames is divided by its AP on the originals (VOC AP at IoU 0.5, ``veil.evaluation.ap``),
so 1.0 means "this detector sees on the transformed frames what it saw on the originals". A
detector that finds nobody on the originals has no pseudo-labels: its figures are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from veil.detectors import Detections, FrozenDetector
from veil.evaluation.ap import average_precision

#: low enough that AP sees the whole ranking of each detector's boxes
RANKING_CONF = 0.001


def _check_pair(original: torch.Tensor, transformed: torch.Tensor) -> None:
    if original.dim() != 4 or original.shape[1] != 3 or original.shape != transformed.shape:
        raise ValueError(f"original and transformed frames must both be (N, 3, H, W) of one shape, got "
                         f"{tuple(original.shape)} and {tuple(transformed.shape)}")


@torch.no_grad()
def detect_all(detector: FrozenDetector, frames: torch.Tensor, conf: float, batch_size: int = 8) -> list[Detections]:
    """``detector.detect`` over ``frames`` (N, 3, H, W), float in [0, 1] or uint8, in batches; on the CPU."""
    tensors = [*detector.parameters(), *detector.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    out = []
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size].to(device)
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float().clamp(0, 1)
        out += [Detections(d.boxes.cpu(), d.scores.cpu(), d.labels.cpu()) for d in detector.detect(batch, conf=conf)]
    return out


def detector_ap(original: torch.Tensor, transformed: torch.Tensor, detector: FrozenDetector,
                batch_size: int = 8, on_original: list[Detections] | None = None,
                on_transformed: list[Detections] | None = None) -> dict:
    """One detector's AP on the originals and on the transformed frames against its own pseudo-labels.
    ``on_original`` / ``on_transformed``: its detections on those frames at ``RANKING_CONF``, when
    already made (an audit compares many transforms with the same originals, and runs its own
    detector once per transform for every utility figure)."""
    _check_pair(original, transformed)
    if on_original is None:
        on_original = detect_all(detector, original, RANKING_CONF, batch_size)
    labels = [d.boxes[d.scores >= detector.pseudo_label_threshold] for d in on_original]
    if on_transformed is None:
        on_transformed = detect_all(detector, transformed, RANKING_CONF, batch_size)
    ap_original = average_precision([(d.boxes, d.scores) for d in on_original], labels)
    ap_transformed = average_precision([(d.boxes, d.scores) for d in on_transformed], labels)
    relative = ap_transformed / ap_original if ap_original > 0 else float("nan")
    return {"pseudo_labels": sum(len(b) for b in labels), "threshold": detector.pseudo_label_threshold,
            "ap_original": ap_original, "ap_transformed": ap_transformed, "relative_ap": relative}


def relative_ap_by_detector(original: torch.Tensor, transformed: torch.Tensor,
                            detectors: dict[str, FrozenDetector], batch_size: int = 8,
                            on_original: dict[str, list[Detections]] | None = None,
                            on_transformed: dict[str, list[Detections]] | None = None) -> dict[str, float]:
    """Per detector name: its AP on ``transformed`` / its AP on ``original``, both against the
    pseudo-labels it gives the originals at its ``pseudo_label_threshold``. Frames are (N, 3, H, W).
    ``on_original`` / ``on_transformed``: per name, that detector's detections already made on those
    frames (see :func:`detector_ap`)."""
    before, after = on_original or {}, on_transformed or {}
    return {name: detector_ap(original, transformed, det, batch_size, before.get(name), after.get(name))["relative_ap"]
            for name, det in detectors.items()}


def count_error(original: torch.Tensor, transformed: torch.Tensor, detector: FrozenDetector,
                batch_size: int = 8, on_original: list[Detections] | None = None,
                on_transformed: list[Detections] | None = None) -> dict:
    """People counted per frame (detections at the pseudo-label threshold) on the originals and on the
    transformed frames: the per-frame counts, the mean absolute error, the mean signed error (negative:
    people lost), and the relative error = sum |difference| / sum original counts (NaN with nobody).
    ``on_original`` / ``on_transformed``: the detector's detections on those frames at its pseudo-label
    threshold, when made."""
    _check_pair(original, transformed)
    cut = detector.pseudo_label_threshold
    if on_original is None:
        on_original = detect_all(detector, original, cut, batch_size)
    if on_transformed is None:
        on_transformed = detect_all(detector, transformed, cut, batch_size)
    before = np.array([len(d.boxes) for d in on_original])
    after = np.array([len(d.boxes) for d in on_transformed])
    diff = after - before
    total = int(before.sum())
    return {"original": before.tolist(), "transformed": after.tolist(),
            "mae": float(np.abs(diff).mean()) if len(diff) else math.nan,
            "mean_error": float(diff.mean()) if len(diff) else math.nan,
            "relative_error": float(np.abs(diff).sum() / total) if total else math.nan,
            "frames": len(before), "threshold": cut}
