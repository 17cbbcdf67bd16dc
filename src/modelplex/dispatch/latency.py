"""Predicted latency of one batch from the slice's own recent measurements (pure).

Robust to stalls: a prediction is the median of the last few batches of a size, so one batch
held up by a paused worker or a busy event loop does not move it; and measurements age out, so
an estimate that went up cannot lock a model out forever (see BatchQueue's probes).
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Callable

WINDOW = 8  # batches per size whose median is the prediction
MAX_AGE_S = 10.0  # a measurement older than this no longer counts
AGE_EVERY_S = 0.5  # how often old measurements are dropped (aging is lazy)


class LatencyEstimator:
    """Per batch size, the median of the latest WINDOW measured batch latencies no older than
    `max_age_s`.

    Unmeasured sizes are interpolated linearly between measured neighbours; beyond the largest
    measured size the latency grows in proportion to the batch (a safe over-estimate). An optional
    prior (e.g. from a profile) answers until a size is measured, and again once its
    measurements aged out.
    """

    def __init__(
        self,
        prior_s: Callable[[int], float] | None = None,
        window: int = WINDOW,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._prior_s = prior_s  # latency of a batch before any measurement, if known
        self._window = max(1, window)
        self._max_age_s = max_age_s
        self._sizes: list[int] = []  # measured batch sizes, sorted
        self._samples: dict[int, deque[tuple[float, float]]] = {}  # size -> (time, seconds), oldest first
        self._mean_s: dict[int, float] = {}  # size -> median of its samples (the prediction)
        self._next_age_s = 0.0  # when age() next looks at the samples
        self.last_observed_s = -1e18  # time of the newest measurement

    def observe(self, batch: int, latency_s: float, now: float) -> None:
        samples = self._samples.get(batch)
        if samples is None:
            bisect.insort(self._sizes, batch)
            samples = self._samples[batch] = deque(maxlen=self._window)
        samples.append((now, latency_s))
        self._mean_s[batch] = _median([s for _, s in samples])
        self.last_observed_s = max(self.last_observed_s, now)

    def age(self, now: float) -> None:
        """Forget measurements older than max_age_s (cheap: looks twice a second at most)."""
        if now < self._next_age_s:
            return
        self._next_age_s = now + AGE_EVERY_S
        horizon = now - self._max_age_s
        for size in list(self._sizes):
            samples = self._samples[size]
            if samples[0][0] >= horizon:
                continue
            while samples and samples[0][0] < horizon:
                samples.popleft()
            if samples:
                self._mean_s[size] = _median([s for _, s in samples])
            else:
                del self._samples[size], self._mean_s[size]
                self._sizes.remove(size)

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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
