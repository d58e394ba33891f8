"""The power of a paired comparison: the smallest difference an audit of this size can detect.

A two-sided test at level ``alpha`` whose estimate is roughly normal with standard error ``se``
rejects "no difference" with probability ``power`` when the true difference is
(z_{1 - alpha/2} + z_{power}) * se: the minimum detectable difference (MDD). With the paired
cluster bootstrap, ``se`` is the standard deviation of the difference's replicates.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from veil.errors import VeilError


def minimum_detectable_difference(standard_error: float, alpha: float = 0.05, power: float = 0.80) -> float:
    """(z_{1-alpha/2} + z_{power}) * standard_error: 2.80 standard errors at the defaults.

    NaN in, NaN out (a comparison whose replicates were undefined has no known power).
    """
    if not (0 < alpha < 1 and 0 < power < 1):
        raise VeilError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    if math.isnan(standard_error):
        return float("nan")
    if standard_error < 0:
        raise VeilError(f"a standard error cannot be negative, got {standard_error}")
    z = NormalDist()
    return float((z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * standard_error)
