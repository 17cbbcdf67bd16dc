"""The frontend's measured CPU cost per request (pure: the driver passes CPU seconds in).

The runtime reports, every sampling interval, the CPU seconds its own process spent (all its
threads: the event loop, gRPC's threads, the decode pool); the controller counts the arrivals.
Intervals are pooled until they hold `min_requests` arrivals, so an idle server's timers are not
charged to the odd request; each pooled sample moves the estimate by `alpha` (EWMA). Before the
first sample the estimate is `default_us`: measured on our 2-core benchmark host at 32 in flight,
125 µs per request with binary tensors, about 300 µs with JSON or gRPC (benchmarks/README.md,
"Data path"); 200 µs sits between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_US_PER_REQUEST = 200.0


@dataclass
class FrontendLoad:
    """EWMA of the frontend's CPU µs per arriving request."""

    default_us: float = DEFAULT_US_PER_REQUEST  # the estimate before any sample
    alpha: float = 0.3  # weight of the newest pooled sample
    min_requests: int = 200  # arrivals a sample needs (fewer: pooled with the next interval)
    samples: int = field(default=0, init=False)  # pooled samples taken so far
    _us: float | None = field(default=None, init=False)
    _cpu_s: float = field(default=0.0, init=False)  # CPU seconds not yet sampled
    _arrivals: int = field(default=0, init=False)  # arrivals not yet sampled

    @property
    def us_per_request(self) -> float:
        return self.default_us if self._us is None else self._us

    def arrived(self, count: int = 1) -> None:
        self._arrivals += count

    def cpu_used(self, cpu_s: float) -> None:
        """The frontend spent `cpu_s` CPU seconds since the last report."""
        self._cpu_s += max(0.0, cpu_s)
        if self._arrivals < self.min_requests:
            return
        sample = self._cpu_s / self._arrivals * 1e6
        self._us = sample if self._us is None else self.alpha * sample + (1 - self.alpha) * self._us
        self.samples += 1
        self._cpu_s, self._arrivals = 0.0, 0
