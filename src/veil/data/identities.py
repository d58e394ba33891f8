"""Pseudo-identities without hand labels: track people through the ORIGINAL frames with
ByteTrack over the detector's pseudo-label boxes; one track = one pseudo-identity.

ByteTrack comes from Roboflow's ``trackers`` package, where supervision moved its
``sv.ByteTrack`` (supervision >= 0.27 no longer ships it); it consumes ``sv.Detections``.
Per identity, the crops are split by time into attacker-train (the first ~60%) and
attacker-test (the rest), so every train crop of an identity is earlier than every test crop.
Without a gap (``split_by_time``) the last train and the first test crop are one frame apart,
which measures short-term tracking; ``split_with_gap`` drops the crops within a time gap, so
an attack has to re-identify a person rather than match a near-duplicate neighbouring frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from veil.data.crops import MIN_CROP_SIDE, CropSet, big_enough
from veil.errors import VeilError
from veil.io import read_json


@dataclass
class TrackerConfig:
    """ByteTrack settings tuned for 5 fps pseudo-labels (people move ~10-20 px a frame)."""

    frame_rate: float = 5.0
    lost_track_buffer: int = 45  # in 30 fps frames (trackers' convention): 1.5 s
    minimum_iou_threshold: float = 0.1  # low: at 5 fps consecutive boxes overlap little
    # every pseudo-label already passed the detector's pseudo-label threshold: all are "high"
    track_activation_threshold: float = 0.0
    high_conf_det_threshold: float = 0.0
    minimum_consecutive_frames: int = 1  # pseudo-labels are already confident: no warm-up


def _frame_order(dataset) -> list[list[int]]:
    """Dataset positions grouped per clip, each group in time order."""
    info = {f["name"]: f for f in dataset.manifest["frames"]}
    clips: dict[int, list[tuple[float, int]]] = {}
    for pos, name in enumerate(dataset.names):
        f = info.get(name, {"clip": 0, "time": float(pos)})
        clips.setdefault(int(f["clip"]), []).append((float(f["time"]), pos))
    return [[pos for _, pos in sorted(v)] for _, v in sorted(clips.items())]


def _scores(dataset) -> list[np.ndarray]:
    labels = read_json(dataset.root / "labels.json")
    return [np.asarray(labels[n].get("scores") or [1.0] * len(labels[n]["boxes"]), dtype=np.float32)
            for n in dataset.names]


def track_identities(dataset, config: TrackerConfig | None = None) -> CropSet:
    """Every pseudo-label box of ``dataset`` (a FrameDataset) with its ByteTrack track id
    (-1 when ByteTrack left it unmatched). Ids are unique across clips."""
    import supervision as sv
    from trackers import ByteTrackTracker

    config = config or TrackerConfig()
    scores = _scores(dataset)
    times = {f["name"]: float(f["time"]) for f in dataset.manifest["frames"]}
    frame, box, ident, time = [], [], [], []
    next_id = 0
    for clip in _frame_order(dataset):
        tracker = ByteTrackTracker(
            lost_track_buffer=config.lost_track_buffer, frame_rate=config.frame_rate,
            track_activation_threshold=config.track_activation_threshold,
            minimum_consecutive_frames=config.minimum_consecutive_frames,
            minimum_iou_threshold=config.minimum_iou_threshold,
            high_conf_det_threshold=config.high_conf_det_threshold,
        )
        clip_ids: dict[int, int] = {}
        for pos in clip:
            boxes = dataset.targets[pos].boxes.numpy().reshape(-1, 4).astype(np.float32)
            conf = scores[pos] if len(scores[pos]) == len(boxes) else np.ones(len(boxes), np.float32)
            dets = sv.Detections(xyxy=boxes, confidence=conf, class_id=np.zeros(len(boxes), int),
                                 data={"box_index": np.arange(len(boxes))})
            tracked = tracker.update(dets)
            ids = np.full(len(boxes), -1)
            if len(tracked):
                ids[tracked.data["box_index"]] = tracked.tracker_id
            for k in range(len(boxes)):
                tid = int(ids[k])
                if tid >= 0 and tid not in clip_ids:
                    clip_ids[tid] = next_id
                    next_id += 1
                frame.append(pos)
                box.append(boxes[k])
                ident.append(clip_ids[tid] if tid >= 0 else -1)
                time.append(times.get(dataset.names[pos], float(pos)))
    n = len(frame)
    return CropSet(np.asarray(frame, int), np.asarray(box, np.float32).reshape(-1, 4), np.asarray(ident, int),
                   np.full(n, "", dtype="<U5"), np.asarray(time, float))


def split_by_time(crops: CropSet, train_fraction: float = 0.6) -> CropSet:
    """Assign "train" to the earliest ``train_fraction`` of each identity's crops and "test"
    to the rest. Crops sharing a frame time never straddle the cut, so train < test strictly."""
    split = np.full(len(crops), "", dtype="<U5")
    for pid in np.unique(crops.identity[crops.identity >= 0]):
        idx = np.flatnonzero(crops.identity == pid)
        idx = idx[np.argsort(crops.time[idx], kind="stable")]
        t = crops.time[idx]
        cut = int(round(train_fraction * len(idx)))
        cut = min(max(cut, 1), len(idx) - 1)
        # move the cut back to the first crop of its timestamp so no time is on both sides
        while cut > 0 and t[cut] == t[cut - 1]:
            cut -= 1
        if cut == 0:
            continue
        split[idx[:cut]] = "train"
        split[idx[cut:]] = "test"
    return CropSet(crops.frame, crops.box, crops.identity, split, crops.time, crops.extra)


# Frame times are multiples of 1/fps; a tolerance keeps "exactly the gap apart" on the right side.
_EPS = 1e-6


def split_with_gap(crops: CropSet, train_fraction: float = 0.6, gap: float = 1.0) -> CropSet:
    """Re-identification split: per identity, attacker-train is its earliest crops up to the
    ``train_fraction`` quantile in time, attacker-test every crop at least ``gap`` seconds
    after the last train crop; crops in between are left unassigned (split "")."""
    split = np.full(len(crops), "", dtype="<U5")
    for pid in np.unique(crops.identity[crops.identity >= 0]):
        idx = np.flatnonzero(crops.identity == pid)
        t = crops.time[idx]
        order = np.sort(t)
        cut = min(max(int(round(train_fraction * len(idx))), 1), len(idx) - 1)
        last_train = order[cut - 1]
        train = t <= last_train + _EPS
        test = t >= last_train + max(gap, 0.0) - _EPS
        test &= ~train  # gap 0: a shared timestamp stays on the train side
        if train.any() and test.any():
            split[idx[train]] = "train"
            split[idx[test]] = "test"
    return CropSet(crops.frame, crops.box, crops.identity, split, crops.time, crops.extra)


def hold_out_latest(crops: CropSet, fraction: float = 0.2) -> CropSet:
    """Mark the latest ``fraction`` of each identity's attacker-train crops (by time) "val",
    the attackers' early-stopping set; identities too short to spare any keep all for training."""
    if fraction <= 0:
        return crops
    train = crops.split == "train"
    inner = split_by_time(crops.subset(train), 1.0 - fraction)
    split = crops.split.copy()
    split[np.flatnonzero(train)[inner.split == "test"]] = "val"
    return CropSet(crops.frame, crops.box, crops.identity, split, crops.time, crops.extra)


def build_identities(
    dataset, min_track: int = 8, train_fraction: float = 0.6, min_side: int = MIN_CROP_SIDE,
    tracker: TrackerConfig | None = None, gap: float | None = None, what: str = "this split",
) -> CropSet:
    """Pseudo-identity crops of ``dataset`` split into attacker-train / attacker-test by time.

    Tracks with fewer than ``min_track`` crops of at least ``min_side`` x ``min_side`` pixels
    are dropped (too short to split); the result holds only identities with both splits.
    ``gap``: None splits as ``split_by_time`` (tracking), a number as ``split_with_gap``.
    """
    crops = track_identities(dataset, tracker)
    crops = crops.subset(big_enough(crops.box, min_side) & (crops.identity >= 0))
    ids, counts = np.unique(crops.identity, return_counts=True)
    crops = crops.subset(np.isin(crops.identity, ids[counts >= min_track]))
    crops = split_by_time(crops, train_fraction) if gap is None else split_with_gap(crops, train_fraction, gap)
    crops = crops.subset(crops.split != "")
    if len(np.unique(crops.identity)) < 2:
        gap_text = "" if gap is None else f" and attacker-test crops {gap:g} s after their attacker-train crops"
        raise VeilError(
            f"{what} leaves fewer than 2 pseudo-identities with >= {min_track} crops{gap_text}; "
            "use longer footage, more splits, a lower min_track or a shorter time gap"
        )
    # renumber 0..K-1 so identity labels double as class indices
    _, crops.identity = np.unique(crops.identity, return_inverse=True)
    return crops
