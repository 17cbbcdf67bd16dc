"""SLO attainment over a sliding window (pure: `now` is passed in)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class AttainmentWindow:
    """Fraction of requests answered within their deadline over the last `window_s` seconds,
    kept as per-second buckets so that recording is O(1)."""

    window_s: float = 10.0  # how far back the fraction looks
    _buckets: deque[list[float]] = field(default_factory=deque, init=False)  # [second, ok, total]

    def record(self, now: float, ok: bool) -> None:
        second = float(int(now))
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0.0, 0.0])
        bucket = self._buckets[-1]
        bucket[1] += 1.0 if ok else 0.0
        bucket[2] += 1.0
        self._trim(now)

    def counts(self, now: float) -> tuple[int, int]:
        """(requests within SLO, all requests) in the window."""
        self._trim(now)
        return int(sum(b[1] for b in self._buckets)), int(sum(b[2] for b in self._buckets))

    def attainment(self, now: float) -> float | None:
        ok, total = self.counts(now)
        return ok / total if total else None

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] < now - self.window_s:
            self._buckets.popleft()
