"""Baseline sweeps: each classic method's privacy-utility curve (wu-2018 Fig. 2), and its
strength calibrated to the obfuscator's relative person AP, as de-coninck-2024 4.3 tuned
the baselines to equal utility.

1. Utility curve: relative AP at the no-op strength (exactly 1: the frames come back
   unchanged) and at every sweep strength. Only the detector runs, on the AP frames, so a
   point costs seconds.
2. Calibration: regula falsi on strength inside the first bracket (from the weak end) that
   straddles the target, ``calibration_steps`` more utility probes at most.
3. Privacy: the full attack (identity and attributes) at the calibrated strength; identity
   attacks at ``sweep_points`` further strengths, strongest first. The no-op (the original
   frames) and the paper strength are attacked already.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from veil.evaluation.frames import baseline_transform
from veil.obfuscators.baselines import Baseline

if TYPE_CHECKING:
    from veil.evaluation.audit import AuditRun


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


def sweep_baseline(run: AuditRun, name: str, baseline: Baseline, target: float | None) -> dict:
    """Trace ``baseline`` (already evaluated at its paper strength as ``name``) over strengths,
    calibrate it to ``target`` relative AP (None: no calibration) and attack selected points."""
    config = run.config

    def transform(s: float):
        return baseline_transform(baseline.with_strength(s), run.same_detector)

    def probe(s: float) -> float:
        return run.relative_ap(transform(s))

    paper = canonical(baseline.strength)
    utility = {canonical(baseline.none_strength): 1.0, paper: run.methods[name]["relative_ap"]}
    for s in map(canonical, baseline.sweep):
        if s not in utility:
            utility[s] = probe(s)
    attacked = {canonical(baseline.none_strength): "original", paper: name}  # strength -> method name
    result: dict = {"stronger": baseline.stronger, "none_strength": baseline.none_strength}

    if target is not None:
        s_cal = calibrate(baseline, utility, probe, target, config.calibration_steps, config.ap_tolerance)
        if s_cal not in attacked:  # otherwise the no-op or the paper strength: reuse its method entry
            attacked[s_cal] = f"{name} (matched)"
            run.evaluate(attacked[s_cal], "baseline", run.frames(transform(s_cal)), strength=s_cal)
        method = attacked[s_cal]
        entry = run.methods[method]
        if "attributes" not in entry:  # the paper strength was matched: attack its attributes too
            run.attack_attributes(method, run.frames(transform(s_cal)))
        result["calibrated"] = {
            "strength": s_cal, "relative_ap": entry["relative_ap"], "target_relative_ap": target,
            "matched": abs(entry["relative_ap"] - target) <= config.ap_tolerance,
            "identity_worst_case": entry["identity"]["worst_case"], "method": method,
        }
        run.say(f"{name}: calibrated strength {s_cal:.4g} -> relative AP {entry['relative_ap']:.3f} "
                f"(target {target:.3f})")

    # strongest first: the curve's far end shows where a baseline buys privacy only by
    # destroying utility
    candidates = [s for s in weak_to_strong(baseline, map(canonical, baseline.sweep)) if s not in attacked][::-1]
    for s in candidates[: config.sweep_points]:
        attacked[s] = f"{name}@{s:.3g}"
        run.evaluate(attacked[s], "baseline", run.frames(transform(s)), strength=s, attributes=False, grid=False)

    result["utility"] = [{"strength": s, "relative_ap": utility[s]} for s in weak_to_strong(baseline, utility)]
    points = {s: run.methods[attacked[s]] for s in weak_to_strong(baseline, attacked)}
    result["points"] = [{"strength": s, "relative_ap": m["relative_ap"],
                         "identity_worst_case": m["identity"]["worst_case"]} for s, m in points.items()]
    return result
