"""Pseudo-identities from ByteTrack on real vtest frames: no temporal leak between the
attacker-train and attacker-test crops of any identity."""

from __future__ import annotations

import numpy as np
import pytest

from veil.data.crops import CropSet, cut_crops
from veil.data.identities import build_identities, split_by_time, track_identities


@pytest.fixture(scope="module")
def test_split(dataset):
    from veil.data.dataset import FrameDataset

    return FrameDataset(dataset, "test")


def test_tracks_are_long_on_vtest(test_split):
    raw = track_identities(test_split)
    assert len(raw) == sum(len(t.boxes) for t in test_split.targets)
    _, counts = np.unique(raw.identity[raw.identity >= 0], return_counts=True)
    # 5 fps tuning: several people are followed through most of the split
    assert (counts >= 0.5 * len(test_split)).sum() >= 3
    assert (raw.identity >= 0).mean() > 0.8


def test_no_temporal_overlap_between_attacker_splits(test_split):
    crops = build_identities(test_split, min_track=8)
    ids = np.unique(crops.identity)
    assert len(ids) >= 3
    assert list(ids) == list(range(len(ids)))
    for pid in ids:
        mine = crops.identity == pid
        train_t = crops.time[mine & (crops.split == "train")]
        test_t = crops.time[mine & (crops.split == "test")]
        assert len(train_t) and len(test_t)
        assert train_t.max() < test_t.min()
        assert mine.sum() >= 8
    w, h = crops.box[:, 2] - crops.box[:, 0], crops.box[:, 3] - crops.box[:, 1]
    assert (w >= 20).all() and (h >= 20).all()
    patches = cut_crops(test_split.images, crops, (32, 64))
    assert patches.shape == (len(crops), 3, 64, 32) and patches.dtype == np.uint8


def test_split_by_time_never_cuts_inside_a_timestamp():
    n = 10
    times = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], float)
    crops = CropSet(np.arange(n), np.zeros((n, 4), np.float32), np.zeros(n, int), np.full(n, "", "<U5"), times)
    out = split_by_time(crops, 0.5)  # the 50% cut falls between two crops of t=2
    assert out.time[out.split == "train"].max() < out.time[out.split == "test"].min()
    assert set(out.split) == {"train", "test"}
