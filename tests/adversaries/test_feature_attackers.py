"""The two attackers built from frozen features: the cloud operator's detector backbone
(detector_features) and the fusion of colour, texture and deep features (fused)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from veil.adversaries import ATTACKERS
from veil.adversaries.attackers.detector_features import DetectorFeaturesAttacker
from veil.adversaries.attackers.fused import BLOCKS
from veil.errors import VeilError


def test_detector_features_are_the_real_detectors_stage_outputs_pooled_over_the_crop(real_crops, yolo):
    """The features equal what YOLOv8s's own full forward pass computes at P3, P4 and P5
    (layers 4, 6, 8), averaged over the crop: the attacker reads the detector the cloud runs."""
    x = real_crops["x"][:4]  # 32x64: both sides multiples of the stride, so the full model takes it as is
    attacker = DetectorFeaturesAttacker()
    feats = attacker.features(x)
    assert feats.shape == (4, 128 + 256 + 512)
    seen = {}
    hooks = [yolo.model.model[i].register_forward_hook(lambda _m, _in, out, i=i: seen.__setitem__(i, out))
             for i in (4, 6, 8)]
    try:
        with torch.no_grad():
            yolo.model(torch.from_numpy(x).float() / 255)
    finally:
        for h in hooks:
            h.remove()
    expected = torch.cat([seen[i].mean((-2, -1)) for i in (4, 6, 8)], 1).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_detector_features_heads_and_embedding(real_crops):
    x, ids, x_test = real_crops["x"], real_crops["identity"], real_crops["x_test"]
    linear = ATTACKERS.build("detector_features").fit(x, ids, "identity")
    knn = ATTACKERS.build("detector_features", head="knn", k=5).fit(x, ids, "identity")
    assert linear.family == knn.family == "frozen_features"
    assert "LogisticRegression" in linear.budget()["model"] and "NN" in knn.budget()["model"]
    # the embedding is the standardised pooled feature vector, the same whatever the head
    np.testing.assert_allclose(linear.embed(x_test), knn.embed(x_test), rtol=1e-5, atol=1e-5)
    # a k-NN with k = 1 gives a crop seen in training its own label
    assert (ATTACKERS.build("detector_features", head="knn", k=1).fit(x, ids, "identity").predict(x) == ids).all()


def test_detector_features_without_ultralytics_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # what a missing package looks like to import
    with pytest.raises(VeilError, match=r"veil\[yolo\]"):
        ATTACKERS.build("detector_features")


def test_fused_weighs_each_feature_block_equally(real_crops):
    x, ids = real_crops["x"], real_crops["identity"]
    attacker = ATTACKERS.build("fused").fit(x, ids, "identity")
    sizes = attacker.budget()["block_sizes"]
    assert list(sizes) == list(BLOCKS) and sizes["deep"] == 1280 and sizes["colour"] == 6 * 72
    emb = attacker.embed(x)
    assert emb.shape == (len(x), sum(sizes.values()))
    # standardised, then each block scaled by 1/sqrt(its varying features): each has total variance 1
    active = attacker.budget()["block_active"]
    assert all(0 < active[k] <= sizes[k] for k in BLOCKS)
    bounds = np.cumsum([0, *sizes.values()])
    totals = [emb[:, a:b].var(0).sum() for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_allclose(totals, 1.0, rtol=1e-3)
