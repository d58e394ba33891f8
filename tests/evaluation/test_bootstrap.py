"""Cluster bootstrap intervals: they cover the truth as often as they claim, and their
replicates reduce to the plain metrics when every group is drawn once."""

from __future__ import annotations

import numpy as np

from veil.evaluation.bootstrap import (
    accuracy_replicates,
    group_weights,
    mean_accuracy_replicates,
    percentile_interval,
)
from veil.evaluation.privacy_metrics import mean_accuracy, top1_accuracy


def _clustered(rng, p: float, groups: int = 30, per_group: int = 6, spread: float = 0.15
               ) -> tuple[np.ndarray, np.ndarray]:
    """0/1 outcomes whose success rate varies by group around p: correlated within a group."""
    rates = np.clip(rng.normal(p, spread, groups), 0, 1)
    g = np.repeat(np.arange(groups), per_group)
    return (rng.random(len(g)) < rates[g]).astype(float), g


def test_interval_covers_a_known_proportion_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    p, trials, hits = 0.6, 200, 0
    truth = np.clip(np.random.default_rng(10_000).normal(p, 0.15, 200_000), 0, 1).mean()
    for t in range(trials):
        # the population mean of the clipped group rates is the proportion the interval estimates
        correct, g = _clustered(rng, p)
        w, inv = group_weights(g, 500, seed=t)
        lo, hi = percentile_interval(accuracy_replicates(correct, w, inv))
        hits += lo <= truth <= hi
    assert 0.88 <= hits / trials <= 0.99  # nominal 0.95; percentile intervals run a little narrow


def test_ignoring_the_groups_gives_too_narrow_an_interval():
    rng = np.random.default_rng(1)
    correct, g = _clustered(rng, 0.5, groups=20, per_group=10, spread=0.3)
    w, inv = group_weights(g, 2000, 0)
    lo, hi = percentile_interval(accuracy_replicates(correct, w, inv))
    w1, inv1 = group_weights(np.arange(len(g)), 2000, 0)
    lo1, hi1 = percentile_interval(accuracy_replicates(correct, w1, inv1))
    assert hi - lo > 1.3 * (hi1 - lo1)


def test_replicates_with_every_group_once_equal_the_plain_metrics():
    rng = np.random.default_rng(2)
    n, m = 40, 5
    gt = rng.integers(0, 2, (n, m))
    pred = rng.integers(0, 2, (3, n, m))  # three predictors at once
    groups = np.arange(n) // 4
    _, inv = group_weights(groups, 1, 0)
    ones = np.ones((1, groups.max() + 1))
    ma = mean_accuracy_replicates(pred, gt, ones, inv)
    assert ma.shape == (1, 3)
    assert np.allclose(ma[0], [mean_accuracy(p, gt) for p in pred])
    labels = rng.integers(0, 4, n)
    guesses = rng.integers(0, 4, (2, n))
    acc = accuracy_replicates(guesses == labels, ones, inv)
    assert np.allclose(acc[0], [top1_accuracy(x, labels) for x in guesses])


def test_weights_draw_as_many_groups_as_there_are():
    w, inv = group_weights(np.array([5, 5, 7, 9, 9, 9]), 100, 0)
    assert w.shape == (100, 3) and np.all(w.sum(1) == 3)
    assert list(inv) == [0, 0, 1, 2, 2, 2]
