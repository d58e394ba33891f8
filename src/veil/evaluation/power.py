"""Placeholder until the attackers branch lands its power module (same API)."""

from __future__ import annotations

import math
from statistics import NormalDist


def minimum_detectable_difference(standard_error: float, alpha: float = 0.05, power: float = 0.80) -> float:
    """Smallest true difference a two-sided test at ``alpha`` detects with probability ``power``."""
    if not math.isfinite(standard_error):
        return float("nan")
    z = NormalDist()
    return (z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * standard_error
