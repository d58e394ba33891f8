"""Privacy metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from veil.evaluation.privacy_metrics import (
    attribute_chance,
    attribute_metrics,
    identity_chance,
    instance_metrics,
    mean_accuracy,
    per_attribute_balanced_accuracy,
    top1_accuracy,
)

PRED = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
GT = np.array([[1, 0], [0, 1], [0, 1], [1, 1]])


def test_ma_matches_hand_computation():
    # attribute 0: TP=1 FN=1 TN=1 FP=1 -> 1/2 (1/2 + 1/2) = 0.5
    # attribute 1: TP=2 FN=1 TN=1 FP=0 -> 1/2 (2/3 + 1) = 5/6
    assert per_attribute_balanced_accuracy(PRED, GT) == pytest.approx([0.5, 5 / 6])
    assert mean_accuracy(PRED, GT) == pytest.approx((0.5 + 5 / 6) / 2)


def test_instance_metrics_match_hand_computation():
    # per sample (acc, prec, rec): (1,1,1) (1/2,1/2,1) (0,0,0) (1/2,1,1/2)
    m = instance_metrics(PRED, GT)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.625)
    assert m["recall"] == pytest.approx(0.625)
    assert m["f1"] == pytest.approx(0.625)


def test_perfect_and_constant_predictors():
    gt = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    assert mean_accuracy(gt, gt) == 1.0
    assert instance_metrics(gt, gt) == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert mean_accuracy(np.zeros_like(gt), gt) == pytest.approx(0.5)
    assert mean_accuracy(np.ones_like(gt), gt) == pytest.approx(0.5)
    assert mean_accuracy(1 - gt, gt) == 0.0


def test_attribute_without_positives_is_left_out_of_ma():
    gt = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    pred = np.array([[1, 1], [0, 0], [1, 0], [0, 0]])
    assert np.isnan(per_attribute_balanced_accuracy(pred, gt)[1])
    assert mean_accuracy(pred, gt) == 1.0  # only attribute 0 is defined, and it is perfect


def test_empty_sets_count_as_agreement():
    m = instance_metrics(np.zeros((2, 3)), np.zeros((2, 3)))
    assert m["accuracy"] == m["precision"] == m["recall"] == 1.0


def test_top1_and_identity_chance():
    assert top1_accuracy([1, 2, 3, 3], [1, 2, 2, 3]) == 0.75
    chance = identity_chance(np.array([0, 0, 0, 1, 2, 2]))
    assert chance["majority"] == 0.5
    assert chance["uniform"] == pytest.approx(1 / 3)


def test_attribute_chance_is_the_majority_predictor():
    train = np.array([[1, 0], [1, 0], [0, 0], [1, 1]])  # majority: attribute 0 = 1, attribute 1 = 0
    test = np.array([[1, 0], [0, 1]])
    chance = attribute_chance(train, test)
    expected = attribute_metrics(np.array([[1, 0], [1, 0]]), test)
    assert chance["mA"] == 0.5 == expected["mA"]
    assert chance["instance_accuracy"] == pytest.approx(expected["instance_accuracy"]) == pytest.approx(0.5)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError):
        mean_accuracy(np.zeros((3, 2)), np.zeros((3, 3)))
