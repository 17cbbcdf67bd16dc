"""Arrival-rate estimation per model (pure: `now` is passed in, no clock reads)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RateEstimator:
    """Counts arrivals in fixed sampling intervals and smooths the per-interval rates (EWMA).

    As the reference system does: sample every `sample_s`, smooth with weight `alpha` on the
    newest sample. A model's first sample sets its rate directly (no ramp from zero)."""

    sample_s: float = 0.5  # length of one counting interval
    alpha: float = 0.3  # weight of the newest interval in the smoothed rate
    _window_start: float | None = field(default=None, init=False)  # start of the open interval
    _counts: dict[str, int] = field(default_factory=dict, init=False)  # arrivals in the open interval
    _smoothed: dict[str, float] = field(default_factory=dict, init=False)  # model -> rate_rps
    _last_sample: dict[str, float] = field(default_factory=dict, init=False)  # newest raw rate_rps
    _tracked: set[str] = field(default_factory=set, init=False)  # models sampled even when idle

    def observe(self, model: str, now: float, count: int = 1) -> None:
        """`count` requests of `model` arrived at `now`."""
        self._advance(now)
        self._counts[model] = self._counts.get(model, 0) + count

    def rates(self, now: float) -> dict[str, float]:
        """Smoothed rate (requests/s) of every model with at least one closed interval."""
        self._advance(now)
        return dict(self._smoothed)

    def raw_rates(self, now: float) -> dict[str, float]:
        """Rate of the last closed interval, unsmoothed."""
        self._advance(now)
        return dict(self._last_sample)

    def track(self, model: str) -> None:
        """Sample `model` in every interval from now on, also when no request arrives."""
        self._tracked.add(model)

    def _advance(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
            return
        while now - self._window_start >= self.sample_s:
            models = self._tracked | set(self._smoothed) | set(self._counts)
            for m in models:
                sample = self._counts.get(m, 0) / self.sample_s
                self._last_sample[m] = sample
                old = self._smoothed.get(m)
                self._smoothed[m] = sample if old is None else old + self.alpha * (sample - old)
            self._counts.clear()
            self._window_start += self.sample_s
