"""Calibration of a baseline's strength to a target utility, on known utility curves."""

from __future__ import annotations

import math

import pytest

from veil.audit.sweep import calibrate, canonical, interpolate, weak_to_strong
from veil.obfuscators.baselines import BASELINES


def run_calibration(name: str, curve, target: float, steps: int = 4, start=None):
    baseline = BASELINES.build(name)
    probes = []

    def probe(s: float) -> float:
        probes.append(s)
        return curve(s)

    strengths = start or [baseline.none_strength, *baseline.sweep]
    utility = {canonical(s): curve(s) for s in strengths}
    best = calibrate(baseline, utility, probe, target, steps, tolerance=0.02)
    return best, utility, probes


def test_regula_falsi_lands_within_a_point_of_the_target():
    curve = lambda s: math.exp(-s / 0.2)  # noise: relative AP falls with sigma  # noqa: E731
    best, utility, probes = run_calibration("noise", curve, target=0.8)
    assert abs(utility[best] - 0.8) <= 0.01
    assert 0 < len(probes) <= 4
    assert curve(best) == utility[best]


def test_lower_is_stronger_baselines_bracket_the_right_way():
    curve = lambda s: min(1.0, s * 1.5)  # pixelation: relative AP grows with the scale factor  # noqa: E731
    best, utility, _ = run_calibration("pixelation", curve, target=0.6)
    assert abs(utility[best] - 0.6) <= 0.01
    assert weak_to_strong(BASELINES.build("pixelation"), [0.5, 1.0, 0.25]) == [1.0, 0.5, 0.25]


def test_integer_strengths_stop_when_nothing_lies_between():
    # blur kernels are odd: between 3 and 5 there is nothing to probe
    curve = {1: 1.0, 3: 0.85, 5: 0.6, 9: 0.4}.__getitem__
    best, utility, probes = run_calibration("gaussian_blur", curve, target=0.75, start=[1, 3, 5, 9])
    assert probes == [] and best == 3.0


def test_a_curve_that_never_reaches_the_target_returns_its_closest_end():
    curve = lambda s: 1.0 - s / 10  # noise barely hurts this detector  # noqa: E731
    best, utility, probes = run_calibration("noise", curve, target=0.5)
    assert probes == [] and best == canonical(max(BASELINES.build("noise").sweep))


@pytest.mark.parametrize("s0,s1", [(3.0, 65.0), (0.0, 0.6), (1.0, 1 / 12)])
def test_interpolate_hits_both_ends(s0, s1):
    assert interpolate(s0, s1, 0) == pytest.approx(s0) and interpolate(s0, s1, 1) == pytest.approx(s1)
