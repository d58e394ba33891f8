"""Crops for the attacker tests: real ones cut from vtest frames, and a synthetic easy case."""

from __future__ import annotations

import numpy as np
import pytest

SIZE = (32, 64)  # (w, h): the fast preset's crop size


@pytest.fixture(scope="session")
def real_crops(dataset) -> dict[str, np.ndarray]:
    """Crops of 3 pseudo-identities of real vtest frames (test split, YOLO boxes, ByteTrack ids)
    with 3 pseudo-attributes: 24 crops to fit on ("x", "identity", "attributes") and 9 others of
    the same people to predict ("x_test")."""
    from veil.data.attributes import pseudo_attributes
    from veil.data.crops import cut_crops
    from veil.data.dataset import FrameDataset
    from veil.data.identities import build_identities

    ds = FrameDataset(dataset, "test")
    crops = build_identities(ds, min_track=8)
    crops = crops.subset(np.isin(crops.identity, [0, 1, 2]))
    attrs = pseudo_attributes(ds.images, crops).values[:, [0, 8, 16]]  # upper_dark, lower_dark, upper_lighter
    x = cut_crops(ds.images, crops, SIZE)
    order = np.arange(len(crops))
    fit = order[:: max(1, len(crops) // 24)][:24]  # tiny sets keep the tests fast
    rest = np.setdiff1d(order, fit)
    test = rest[:: max(1, len(rest) // 9)][:9]
    return {"x": x[fit], "identity": crops.identity[fit], "attributes": attrs[fit], "x_test": x[test]}


def easy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separable 24x48 crops: class 0 wears red, class 1 blue, class 2 green; attribute 0 = bright top."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    colours = np.array([[200, 30, 30], [30, 30, 200], [30, 180, 30]])
    x = rng.integers(0, 60, (n, 3, 48, 24)).astype(np.int64)
    x[:, :, 8:32, 4:20] += colours[y][:, :, None, None]
    bright = rng.integers(0, 2, n)
    x[:, :, :8] += 150 * bright[:, None, None, None]
    attrs = np.stack([bright, (y == 1).astype(int)], 1)
    return np.clip(x, 0, 255).astype(np.uint8), y, attrs
