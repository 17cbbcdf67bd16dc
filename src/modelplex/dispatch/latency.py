"""Predicted latency of one batch from the slice's own recent measurements (pure)."""

from __future__ import annotations

import bisect
from typing import Callable


class LatencyEstimator:
    """Per batch size, an exponentially weighted mean of measured batch latencies.

    Unmeasured sizes are interpolated linearly between measured neighbours; beyond the largest
    measured size the latency grows in proportion to the batch (a safe over-estimate). An optional
    prior (e.g. from a profile) answers until a size is measured.
    """

    def __init__(
        self,
        alpha: float = 0.2,
        prior_s: Callable[[int], float] | None = None,
    ) -> None:
        self._alpha = alpha  # weight of the newest sample
        self._prior_s = prior_s  # latency of a batch before any measurement, if known
        self._sizes: list[int] = []  # measured batch sizes, sorted
        self._mean_s: dict[int, float] = {}  # batch size -> smoothed latency

    def observe(self, batch: int, latency_s: float) -> None:
        old = self._mean_s.get(batch)
        if old is None:
            bisect.insort(self._sizes, batch)
            self._mean_s[batch] = latency_s
        else:
            self._mean_s[batch] = old + self._alpha * (latency_s - old)

    def predict_s(self, batch: int) -> float:
        """Predicted latency of a batch; 0.0 when nothing is known yet (admit optimistically)."""
        sizes = self._sizes
        if not sizes:
            return self._prior_s(batch) if self._prior_s is not None else 0.0
        exact = self._mean_s.get(batch)
        if exact is not None:
            return exact
        if self._prior_s is not None:
            return self._prior_s(batch)
        j = bisect.bisect_left(sizes, batch)
        if j == 0:
            return self._mean_s[sizes[0]]  # a smaller batch is no slower than the smallest seen
        if j == len(sizes):
            top = sizes[-1]
            return self._mean_s[top] * batch / top
        lo, hi = sizes[j - 1], sizes[j]
        y0, y1 = self._mean_s[lo], self._mean_s[hi]
        return max(y0, y0 + (y1 - y0) * (batch - lo) / (hi - lo))

    def snapshot(self) -> dict[int, float]:
        return dict(self._mean_s)
