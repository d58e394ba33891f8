"""Baseline sweeps: each classic method's privacy-utility curve (wu-2018 Fig. 2), and its
strength calibrated to the obfuscator's relative person AP, as de-coninck-2024 4.3 tuned
the baselines to equal utility.

1. Utility curve: relative AP at the no-op strength (exactly 1: the frames come back
   unchanged) and at every sweep strength. Only the detector runs, on the AP frames, so a
   point costs seconds.
2. Calibration: regula falsi on strength inside the first bracket (from the weak end) that
   straddles the target, ``calibration_steps`` more utility probes at most.
3. Privacy (done by the runner on the strengths returned here): the full attack at the
   calibrated strength and the identity attack at ``sweep_points`` further strengths,
   strongest first. The no-op strength is the original frames, attacked already.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from veil.obfuscators.baselines import Baseline


def canonical(strength: float) -> float:
    """Strengths as dictionary keys: 1/3 from the sweep and from the paper are one point."""
    return float(f"{float(strength):.6g}")


def interpolate(s0: float, s1: float, t: float) -> float:
    """Strength between s0 and s1 at fraction t, geometric when both are positive (every
    baseline's knob acts multiplicatively: kernel size, sigma, levels, scale)."""
    if s0 > 0 and s1 > 0:
        return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
    return s0 + t * (s1 - s0)


def weak_to_strong(baseline: Baseline, strengths) -> list[float]:
    return sorted(set(strengths), key=lambda s: s if baseline.stronger == "higher" else -s)


def calibrate(baseline: Baseline, utility: dict[float, float], probe: Callable[[float], float], target: float,
              steps: int, tolerance: float) -> float:
    """The strength whose relative AP is closest to ``target``; new probes are added to
    ``utility`` (strength -> relative AP). Stops early within half the tolerance."""

    def closest() -> float:
        return min(utility, key=lambda s: (abs(utility[s] - target), s))

    retained, streak = None, 0
    for _ in range(steps):
        if abs(utility[closest()] - target) <= tolerance / 2:
            break
        order = weak_to_strong(baseline, utility)
        bracket = next(((a, b) for a, b in zip(order, order[1:])
                        if (utility[a] - target) * (utility[b] - target) < 0), None)
        if bracket is None:  # the curve never crosses the target: the closest end is all there is
            break
        a, b = bracket
        t = (target - utility[a]) / (utility[b] - utility[a])
        if streak >= 2:  # regula falsi creeping in from one side: bisect instead
            t = 0.5
        # snapping (odd kernels, whole levels) may land on a known end: step further inside
        for fraction in (t, 0.25 if t < 0.5 else 0.75, 0.5):
            s = canonical(baseline.snap(interpolate(a, b, fraction)))
            if s not in utility:
                break
        else:  # nothing realisable lies between a and b
            break
        utility[s] = probe(s)
        kept = b if (utility[s] - target) * (utility[a] - target) > 0 else a
        streak = streak + 1 if kept == retained else 1
        retained = kept
    return closest()


@dataclass
class Curve:
    """A baseline's utility curve and the strengths the audit attacks on it."""

    stronger: str
    none_strength: float
    utility: dict[float, float]  # strength -> relative AP (probed)
    calibrated: float | None  # strength matched to the target (None: no target)
    target: float | None
    far_end: list[float]  # strongest sweep strengths, attacked to show the curve's end

    def to_dict(self, baseline: Baseline) -> dict:
        return {"stronger": self.stronger, "none_strength": self.none_strength, "target_relative_ap": self.target,
                "utility": [{"strength": s, "relative_ap": self.utility[s]}
                            for s in weak_to_strong(baseline, self.utility)]}


def trace(baseline: Baseline, probe: Callable[[float], float], paper_relative_ap: float | None,
          target: float | None, sweep_points: int | None, steps: int, tolerance: float) -> Curve:
    """Probe ``baseline``'s relative AP over its sweep and calibrate it to ``target``.

    ``probe(strength)`` returns the relative AP at a strength (the detector only: cheap);
    nothing here attacks or stores anything, the caller evaluates the returned strengths.
    """
    paper = canonical(baseline.strength)
    utility = {canonical(baseline.none_strength): 1.0}
    if paper_relative_ap is not None:
        utility[paper] = paper_relative_ap
    for s in map(canonical, [*baseline.sweep, baseline.strength]):
        if s not in utility:
            utility[s] = probe(s)
    s_cal = None if target is None else calibrate(baseline, utility, probe, target, steps, tolerance)
    skip = {canonical(baseline.none_strength), s_cal}
    strongest = [s for s in weak_to_strong(baseline, map(canonical, baseline.sweep)) if s not in skip][::-1]
    return Curve(baseline.stronger, canonical(baseline.none_strength), utility, s_cal, target,
                 strongest[:sweep_points] if sweep_points is not None else strongest)
