"""Tracking that transfers: ByteTrack on the detections of the transformed frames, scored against
ByteTrack on the detections of the original frames (the reference), with the MOT metrics of
Roboflow's ``trackers`` package (IDF1, HOTA, MOTA; its evaluation matches TrackEval).

Veil's users count and track people: a transform that keeps per-frame AP but breaks tracks (boxes
that jitter, people that blink out) loses them anyway. Identical detections give IDF1 = HOTA =
MOTA = 1; a transform that leaves nobody gives IDF1 = HOTA = 0.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from veil.data.identities import TrackerConfig
from veil.detectors import Detections, FrozenDetector
from veil.evaluation.transfer import _check_pair, detect_all


def track(detections: list[Detections], fps: float, config: TrackerConfig | None = None) -> list[tuple]:
    """ByteTrack over one clip's per-frame detections: per frame, (xyxy boxes (n, 4), track ids (n,))
    of the boxes ByteTrack kept, as the project tracks pseudo-identities (``veil.data.identities``)."""
    import supervision as sv
    from trackers import ByteTrackTracker

    config = replace(config or TrackerConfig(), frame_rate=fps)
    tracker = ByteTrackTracker(
        lost_track_buffer=config.lost_track_buffer, frame_rate=config.frame_rate,
        track_activation_threshold=config.track_activation_threshold,
        minimum_consecutive_frames=config.minimum_consecutive_frames,
        minimum_iou_threshold=config.minimum_iou_threshold, high_conf_det_threshold=config.high_conf_det_threshold,
    )
    out = []
    for d in detections:
        boxes = d.boxes.numpy().reshape(-1, 4).astype(np.float32)
        tracked = tracker.update(sv.Detections(xyxy=boxes, confidence=d.scores.numpy().astype(np.float32),
                                               class_id=np.zeros(len(boxes), int)))
        ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else np.full(len(tracked), -1), int)
        keep = ids >= 0  # -1: a detection ByteTrack left unmatched
        out.append((np.asarray(tracked.xyxy, np.float32)[keep].reshape(-1, 4), ids[keep]))
    return out


def _contiguous(ids: list[np.ndarray]) -> list[np.ndarray]:
    """Track ids renumbered 0..K-1 (the metrics index arrays by id)."""
    flat = np.concatenate(ids) if ids else np.zeros(0, int)
    _, inverse = np.unique(flat, return_inverse=True)
    return np.split(inverse.astype(np.intp), np.cumsum([len(i) for i in ids])[:-1])


def mot_metrics(reference: list[tuple], hypothesis: list[tuple], iou: float = 0.5) -> dict:
    """IDF1, HOTA and MOTA (and their parts) of ``hypothesis`` tracks against ``reference`` tracks."""
    from trackers.eval import box_iou, compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    gt_ids = _contiguous([ids for _, ids in reference])
    hyp_ids = _contiguous([ids for _, ids in hypothesis])
    sims = [box_iou(g.astype(np.float64), h.astype(np.float64)) if len(g) and len(h) else np.zeros((len(g), len(h)))
            for (g, _), (h, _) in zip(reference, hypothesis)]
    identity = compute_identity_metrics(gt_ids, hyp_ids, sims, threshold=iou)
    hota = compute_hota_metrics(gt_ids, hyp_ids, sims)
    clear = compute_clear_metrics(gt_ids, hyp_ids, sims, threshold=iou)
    return {"idf1": float(identity["IDF1"]), "idr": float(identity["IDR"]), "idp": float(identity["IDP"]),
            "hota": float(hota["HOTA"]), "deta": float(hota["DetA"]), "assa": float(hota["AssA"]),
            "mota": float(clear["MOTA"]), "id_switches": int(clear["IDSW"])}


def _check_fps(fps: float) -> None:
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")


def tracking_agreement(original_frames: torch.Tensor, transformed_frames: torch.Tensor, detector: FrozenDetector,
                       fps: float, batch_size: int = 8, tracker: TrackerConfig | None = None,
                       on_original: list[Detections] | None = None) -> dict:
    """ByteTrack on ``detector``'s detections (at its pseudo-label threshold) of the transformed frames,
    against ByteTrack on the originals. Frames are one clip in time order, (N, 3, H, W) at ``fps``.

    Returns IDF1, HOTA, MOTA (with IDR, IDP, DetA, AssA, ID switches) from ``trackers.eval`` and the
    number of reference tracks and boxes; all metrics NaN when the originals hold no track.
    ``on_original``: the detector's detections on the originals at its pseudo-label threshold, when made."""
    _check_pair(original_frames, transformed_frames)
    _check_fps(fps)  # before the detector runs
    cut = detector.pseudo_label_threshold
    if on_original is None:
        on_original = detect_all(detector, original_frames, cut, batch_size)
    result = track_agreement(on_original, detect_all(detector, transformed_frames, cut, batch_size), fps, tracker)
    return {**result, "threshold": cut}


def track_agreement(original: list[Detections], transformed: list[Detections], fps: float,
                    tracker: TrackerConfig | None = None) -> dict:
    """:func:`tracking_agreement` from per-frame detections already made (one clip, time order)."""
    _check_fps(fps)
    if len(original) != len(transformed):
        raise ValueError(f"{len(original)} original frames but {len(transformed)} transformed ones")
    reference = track(original, fps, tracker)
    hypothesis = track(transformed, fps, tracker)
    boxes = sum(len(ids) for _, ids in reference)
    result = {"reference_tracks": len({int(i) for _, ids in reference for i in ids}), "reference_boxes": boxes,
              "transformed_tracks": len({int(i) for _, ids in hypothesis for i in ids}),
              "frames": len(reference), "fps": fps}
    if boxes == 0:
        return {**result, **dict.fromkeys(("idf1", "idr", "idp", "hota", "deta", "assa", "mota"), math.nan),
                "id_switches": 0}
    return {**result, **mot_metrics(reference, hypothesis)}
