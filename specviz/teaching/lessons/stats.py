"""How sure a lesson's comparison is: two rates from their counts, a speed ratio against the
spread of the target-only steps it was measured with.

A lesson that says one rate is higher than another says it only when the counts carry it:
the two-proportion z-test at the 5 % level (|z| ≥ 1.96), with Wilson 95 % intervals shown
beside each rate. A lesson that says one run is faster than another says it only when the
ratio lies outside the spread of the target-only steps of the files it compares.
"""

from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.96


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n trials (95 % by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """z of the pooled two-proportion test of k1/n1 against k2/n2 (positive when the first
    rate is higher); 0 when the pooled rate is 0 or 1 (no spread to test against)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0
    return (k1 / n1 - k2 / n2) / se


def higher(k1: int, n1: int, k2: int, n2: int) -> bool:
    """Is the rate k1/n1 higher than k2/n2 at the 5 % level (two-proportion z ≥ 1.96)?"""
    return two_proportion_z(k1, n1, k2, n2) >= Z95


def rate_text(k: int, n: int) -> str:
    """“k/n = r % (95 %: lo–hi %)”, plain text."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.0%} (95 %: {lo:.0%}–{hi:.0%})" if n else "0/0"


def relative_spread(values: Sequence[float]) -> float:
    """(max − min) / min of positive values (e.g. the mean target-only step of each file a
    comparison draws on): a ratio of speeds measured against them is sure only beyond it."""
    vals = [float(v) for v in values if v and v > 0]
    if len(vals) < 2:
        return float("inf")
    return (max(vals) - min(vals)) / min(vals)


def ratio_beyond_spread(a: float, b: float, spread: float) -> bool:
    """Is a/b further from 1 than the target-only steps' relative spread?"""
    if not (a and b) or not math.isfinite(spread):
        return False
    return abs(a / b - 1) > spread
