"""Pseudo-identities from ByteTrack on real vtest frames: no temporal leak between the
attacker-train and attacker-test crops of any identity."""

from __future__ import annotations

import numpy as np
import pytest

from veil.data.crops import CropSet, cut_crops
from veil.data.identities import build_identities, split_by_time, split_with_gap, track_identities
from veil.errors import VeilError


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


def _assert_gap(crops: CropSet, gap: float) -> None:
    """No crop within the gap: every train crop is earlier than every test crop by >= gap."""
    for pid in np.unique(crops.identity):
        mine = crops.identity == pid
        train_t = crops.time[mine & (crops.split == "train")]
        test_t = crops.time[mine & (crops.split == "test")]
        assert len(train_t) and len(test_t)
        assert test_t.min() - train_t.max() >= gap - 1e-6


def test_time_gap_separates_train_from_test():
    # one identity seen every 0.2 s for 10 s, another for 4 s
    t1, t2 = np.arange(0, 10, 0.2), np.arange(3, 7, 0.2)
    times = np.concatenate([t1, t2])
    ident = np.concatenate([np.zeros(len(t1), int), np.ones(len(t2), int)])
    n = len(times)
    crops = CropSet(np.arange(n), np.zeros((n, 4), np.float32), ident, np.full(n, "", "<U5"), times)
    out = split_with_gap(crops, 0.6, gap=1.0)
    _assert_gap(out.subset(out.split != ""), 1.0)
    for pid, t in ((0, t1), (1, t2)):
        mine = out.identity == pid
        last_train = out.time[mine & (out.split == "train")].max()
        dropped = out.time[mine & (out.split == "")]
        # exactly the crops within the gap are unused
        assert np.allclose(dropped, t[(t > last_train + 1e-6) & (t < last_train + 1.0 - 1e-6)])
        assert len(dropped) == 4  # 0.2 s apart: 4 crops fall strictly inside a 1 s gap
    # no gap: every crop is used and the splits touch, as the tracking protocol does
    assert (split_with_gap(crops, 0.6, gap=0.0).split != "").all()


def test_reid_identities_on_real_frames_respect_the_gap(test_split):
    crops = build_identities(test_split, min_track=8, gap=1.0)
    assert len(np.unique(crops.identity)) >= 2
    _assert_gap(crops, 1.0)


def test_a_gap_longer_than_the_footage_is_refused_clearly(test_split):
    with pytest.raises(VeilError, match="fewer than 2 pseudo-identities.*60 s after"):
        build_identities(test_split, min_track=8, gap=60.0, what="the reid protocol")
