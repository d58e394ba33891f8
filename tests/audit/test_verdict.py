"""The verdict reads intervals, never a bare <: a paired difference whose interval holds 0, or
(figures without replicates) overlapping intervals, are "not distinguishable"."""

import numpy as np
import pytest

from veil.audit.attacks import Predictions, summarise
from veil.audit.config import AuditConfig
from veil.audit.report import Figure, PairRow, PairsSummary
from veil.audit.verdict import BETTER, TIE, WORSE, above, compare, difference, multiplicity


def fig(value, lo, hi):
    return Figure(value=value, interval=(lo, hi))


def test_overlapping_intervals_are_not_distinguishable():
    # 0.59 < 0.61, but the intervals overlap: no claim either way
    assert compare(fig(0.59, 0.52, 0.66), fig(0.61, 0.55, 0.68)) == TIE
    assert compare(fig(0.61, 0.55, 0.68), fig(0.59, 0.52, 0.66)) == TIE


def test_separate_intervals_decide():
    assert compare(fig(0.30, 0.25, 0.35), fig(0.70, 0.64, 0.77)) == BETTER
    assert compare(fig(0.70, 0.64, 0.77), fig(0.30, 0.25, 0.35)) == WORSE


def test_against_chance():
    assert above(fig(0.8, 0.74, 0.86), 0.11) == "above"
    assert above(fig(0.12, 0.05, 0.2), 0.11) == TIE
    assert above(fig(0.05, 0.01, 0.09), 0.11) == "below"


def predictions(correct: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> Predictions:
    """One attacker, one seed, whose prediction is right exactly where ``correct`` is."""
    pred = np.where(correct, truth, (truth + 1) % 15)
    return Predictions("identity", truth, groups, {"attacker": [pred]}, {})


def test_paired_difference_sees_a_shift_that_separate_intervals_hide():
    # 15 identities of 20 test crops each; how often they are recognised varies a lot between
    # identities (the groups), so each figure's own interval is wide. B recognises exactly the
    # crops A does, plus one more per identity: B is worse in every resample.
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(15), 20)
    truth = groups.copy()
    hits_a = rng.integers(2, 18, size=15)
    a = np.concatenate([np.arange(20) < k for k in hits_a])
    b = np.concatenate([np.arange(20) < k + 1 for k in hits_a])
    config = AuditConfig(seeds=1, bootstrap=500)
    fa = summarise(predictions(a, truth, groups), config).worst_case
    fb = summarise(predictions(b, truth, groups), config).worst_case
    assert fa.interval[1] > fb.interval[0]  # the intervals overlap...
    d = difference(fb, fa)
    assert d is not None and d.value == pytest.approx(15 / 300)
    assert 0 < d.interval[0] <= d.value <= d.interval[1]  # ...the paired difference does not
    # B - A is 1/20 in every resample (one more crop of 20 per identity): no spread, so anything
    # above zero is detectable at this size
    assert d.detectable is not None and 0 <= d.detectable < 1e-6 < d.value
    assert compare(fb, fa) == WORSE and compare(fa, fb) == BETTER
    # figures read back from a report carry no replicates: the stricter non-overlap rule decides
    read_a, read_b = (Figure.model_validate(f.model_dump(mode="json")) for f in (fa, fb))
    assert "paired" not in fa.model_dump() and read_a.paired is None
    assert difference(read_b, read_a) is None and compare(read_b, read_a) == TIE


def test_figures_of_different_test_groups_are_never_paired():
    groups = np.repeat(np.arange(15), 20)
    config = AuditConfig(seeds=1, bootstrap=200)
    a = summarise(predictions(np.ones(300, bool), groups, groups), config).worst_case
    shuffled = np.random.default_rng(1).permutation(groups)
    b = summarise(predictions(np.zeros(300, bool), shuffled, shuffled), config).worst_case
    assert difference(a, b) is None
    assert compare(b, a) == BETTER  # 0 % against 100 %: the intervals alone decide


def test_multiplicity_counts_every_comparison_and_what_chance_alone_gives():
    pairs = [PairRow(a="a", b="b", relative_ap_a_minus_b=0, identity={"reid": BETTER, "tracking": TIE}, attributes=TIE),
             PairRow(a="a", b="c", relative_ap_a_minus_b=0, identity={"reid": TIE, "tracking": WORSE}),
             PairRow(a="b", b="c", relative_ap_a_minus_b=0, identity={"reid": TIE, "tracking": TIE}, attributes=TIE)]
    assert multiplicity(pairs) == PairsSummary(comparisons=8, distinguishable=2, expected_by_chance=0.4)
