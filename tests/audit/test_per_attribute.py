"""Which attributes leak: the strongest attribute attacker's balanced accuracy on each attribute."""

import numpy as np

from veil.audit.attacks import Predictions, summarise
from veil.audit.config import AuditConfig


def test_per_attribute_is_the_winners_balanced_accuracy_and_its_mean_is_its_ma():
    rng = np.random.default_rng(0)
    n = 200
    truth = np.zeros((n, 4), np.int64)
    truth[:, 0] = rng.integers(0, 2, n)
    truth[:, 1] = rng.integers(0, 2, n)
    truth[:, 2] = np.arange(n) < 50  # 25 % positive
    # column 3 has no positive test crop: undefined, so left out (as mA leaves it out)
    sees_a0 = truth.copy()
    sees_a0[:, 1:] = 0  # right on attribute 0, always "no" elsewhere: 1.0, 0.5, 0.5
    half_a2 = truth.copy()
    half_a2[:, :2] = 1 - truth[:, :2]  # wrong on 0 and 1 (balanced accuracy 0)
    half_a2[:, 2] = truth[:, 2] & (np.arange(n) % 2 == 0)  # finds half the positives, no false alarm: 0.75
    p = Predictions("attributes", truth, np.arange(n) // 10,
                    {"sees_a0": [sees_a0, sees_a0], "half_a2": [half_a2, half_a2]}, {})
    config = AuditConfig(seeds=2, bootstrap=200)
    result = summarise(p, config, ["a0", "a1", "a2", "a3"])
    assert result.winner == "sees_a0"
    assert result.per_attribute == {"a0": 1.0, "a1": 0.5, "a2": 0.5}
    assert np.mean(list(result.per_attribute.values())) == result.per_attacker["sees_a0"].mA.value
    assert summarise(p, config).per_attribute == {}  # no names, no breakdown
