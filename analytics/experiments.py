"""Comparing two groups' rates: did nudged members come back more often than the holdout?"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class RateDifference:
    """Two groups' rates and their difference ``a - b`` with a 95% interval (Newcombe's hybrid score method).

    ``low``/``high`` are None when either group is empty.
    """

    a_rate: float | None
    b_rate: float | None
    difference: float | None
    low: float | None
    high: float | None

    @property
    def conclusive(self) -> bool:
        """The interval excludes zero: the groups really differ (at the 95% level)."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion (well behaved for small samples and rates near 0 or 1)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(a_successes: int, a_n: int, b_successes: int, b_n: int) -> RateDifference:
    """The difference of two proportions with Newcombe's (1998, method 10) 95% interval.

    Unlike the textbook Wald interval, it stays inside [-1, 1] and keeps its coverage with a few dozen members
    per group and rates near 0, which is what a small community's nudge experiment looks like.
    """
    a_rate = a_successes / a_n if a_n > 0 else None
    b_rate = b_successes / b_n if b_n > 0 else None
    if a_rate is None or b_rate is None:
        return RateDifference(a_rate, b_rate, None, None, None)
    a_low, a_high = wilson_interval(a_successes, a_n)
    b_low, b_high = wilson_interval(b_successes, b_n)
    diff = a_rate - b_rate
    low = diff - math.sqrt((a_rate - a_low) ** 2 + (b_high - b_rate) ** 2)
    high = diff + math.sqrt((a_high - a_rate) ** 2 + (b_rate - b_low) ** 2)
    return RateDifference(a_rate, b_rate, diff, max(-1.0, low), min(1.0, high))
