"""Statistics of timed runs: quantiles and the adaptive stopping rule for a stable median."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z_95 = 1.96  # two-sided 95% normal quantile, for the order-statistic CI of the median


@dataclass(frozen=True)
class StopRule:
    """When to stop timing one (model, slice, batch) point."""

    min_samples: int = 20  # never stop before this many timed runs (p99 needs a few dozen)
    min_s: float = 0.2  # nor before this much timing (cheap points get hundreds of runs)
    max_samples: int = 2000  # never take more than this many
    rel_ci: float = 0.02  # stop when the median's 95% CI half-width / median is at most this
    budget_s: float = 2.0  # stop after this much wall time spent timing the point (after min_samples)

    def done(self, samples_s: Sequence[float], spent_s: float) -> bool:
        n = len(samples_s)
        if n >= self.max_samples:
            return True
        if n < self.min_samples or spent_s < min(self.min_s, self.budget_s):
            return False
        if spent_s >= self.budget_s:
            return True
        return median_rel_ci(samples_s) <= self.rel_ci


def median_rel_ci(samples: Sequence[float]) -> float:
    """Half-width of a distribution-free 95% CI of the median, relative to the median.

    The CI runs between the order statistics at ranks n/2 -+ 1.96*sqrt(n)/2 (binomial(n, 1/2)
    normal approximation); it needs no assumption on the latency distribution, which is skewed.
    """
    n = len(samples)
    if n < 3:
        return math.inf
    xs = sorted(samples)
    half = Z_95 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    med = float(np.median(xs))
    if med <= 0:
        return math.inf
    return (xs[hi] - xs[lo]) / 2 / med


def quantile_ms(samples_s: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of samples in seconds, in milliseconds."""
    return float(np.quantile(np.asarray(samples_s, dtype=np.float64), q)) * 1000.0
