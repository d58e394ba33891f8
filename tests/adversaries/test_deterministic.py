"""Attackers that declare themselves deterministic really are: the audit fits them once and
reuses the predictions for every seed, which is only honest if another seed changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from tests.adversaries.test_attackers import _easy
from veil.adversaries import ATTACKERS

DETERMINISTIC = [n for n in ATTACKERS.names() if ATTACKERS.build(n).deterministic]


def test_the_cheap_classical_and_knn_attackers_are_deterministic():
    assert {"efficientnet_lite0_knn", "hog_linear", "lbp_svm"} <= set(DETERMINISTIC)
    assert "small_cnn" not in DETERMINISTIC and "colour_forest" not in DETERMINISTIC


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_another_seed_gives_the_same_predictions(name):
    x, y, attrs = _easy(24, 2)
    xt, _, _ = _easy(30, 3)
    for task, labels in (("identity", y), ("attributes", attrs)):
        a = ATTACKERS.build(name, seed=0).fit(x, labels, task).predict(xt)
        b = ATTACKERS.build(name, seed=7).fit(x, labels, task).predict(xt)
        assert np.array_equal(a, b)
