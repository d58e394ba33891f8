"""The verdict reads intervals: overlapping ones are "not distinguishable", never a bare <."""

from veil.audit.verdict import BETTER, TIE, WORSE, above, compare


def fig(value, lo, hi):
    return {"value": value, "interval": [lo, hi]}


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
