"""The planning rules, as pure functions over latency curves.

A latency curve is a sequence `lat[b - 1]` = predicted latency (ms, safety factor included) of a
batch of b on one slice size, non-decreasing in b. `alpha` multiplies it for interference.

- saturated: largest b with 2*L(b) <= SLO (a request may wait one full execution while its batch
  fills, then run); throughput = b / L(b).
- residue: serving a leftover rate r, the largest b with L(b) <= b/r and L(b) + b/r <= SLO
  (collect b requests, then run); duty cycle = max(b/r, L(b)).
- time sharing (Nexus squishy bin packing): models take turns in a duty cycle d; model i runs
  b_i = ceil(d*r_i); feasible when sum L_i(b_i) <= d and d + sum L_i(b_i) <= every SLO.
- p_eff: over consecutive menu steps (starting from 0), the upper size of the step with the
  largest saturated-throughput gain per unit of slice; steps gaining < min_gain are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPS = 1e-9


@dataclass(frozen=True)
class SaturatedConfig:
    """A slice busy with one model at its largest SLO-safe batch."""

    batch: int  # batch size
    latency_ms: float  # predicted latency of one batch (alpha included)
    throughput_rps: float  # processes x batch / latency
    processes: int = 1  # worker processes running such batches at once on the slice


@dataclass(frozen=True)
class TurnConfig:
    """A duty cycle over one or more models sharing a slice."""

    duty_ms: float  # length of one round of turns
    batches: tuple[int, ...]  # batch per model, in the order given
    latencies_ms: tuple[float, ...]  # predicted latency per model's batch (alpha included)

    @property
    def busy_ms(self) -> float:
        return sum(self.latencies_ms)

    @property
    def utilisation(self) -> float:
        return self.busy_ms / self.duty_ms if self.duty_ms > 0 else 1.0


def saturated(lat: Sequence[float], slo_ms: float, alpha: float = 1.0) -> SaturatedConfig | None:
    """The SLO/2 rule; None when even a batch of 1 misses it."""
    best: SaturatedConfig | None = None
    for b in range(1, len(lat) + 1):
        l_ms = lat[b - 1] * alpha
        if 2 * l_ms > slo_ms + EPS:
            break
        best = SaturatedConfig(b, l_ms, 1000.0 * b / l_ms)
    return best


def residue(lat: Sequence[float], slo_ms: float, rate_rps: float, alpha: float = 1.0) -> TurnConfig | None:
    """The residue rule for one model serving `rate_rps`; None when no batch meets it."""
    if rate_rps <= 0:
        return None
    for b in range(len(lat), 0, -1):
        l_ms = lat[b - 1] * alpha
        fill_ms = 1000.0 * b / rate_rps
        if l_ms <= fill_ms + EPS and l_ms + fill_ms <= slo_ms + EPS:
            return TurnConfig(max(fill_ms, l_ms), (b,), (l_ms,))
    return None


def timeshare(
    lats: Sequence[Sequence[float]],
    slos_ms: Sequence[float],
    rates_rps: Sequence[float],
    alphas: Sequence[float] | None = None,
) -> TurnConfig | None:
    """Squishy bin packing: the feasible duty cycle with the lowest utilisation, or None."""
    n = len(lats)
    if n == 0:
        return None
    al = alphas if alphas is not None else [1.0] * n
    min_slo = min(slos_ms)
    max_batch = min(len(lat) for lat in lats)
    # between consecutive breakpoints (where some model's batch grows by one) the batches are
    # fixed, so the best cycle there is the longest one the SLOs allow (lowest utilisation)
    cands = sorted({1000.0 * b / r for r in rates_rps if r > 0 for b in range(1, max_batch + 1)})
    best: TurnConfig | None = None
    best_util = math.inf
    prev = 0.0
    for upper in cands:
        if prev >= min_slo:
            break
        batches = [max(1, math.ceil(upper * r / 1000.0 - 1e-7)) for r in rates_rps]
        if max(batches) > max_batch:
            break
        lats_b = [lat[b - 1] * a for lat, b, a in zip(lats, batches, al)]
        busy = sum(lats_b)
        d = min(upper, min_slo - busy)
        if d > prev and busy <= d + EPS:
            util = busy / d
            if util < best_util - 1e-12:
                best_util = util
                best = TurnConfig(d, tuple(batches), tuple(lats_b))
        prev = upper
    return best


def p_eff(throughputs: Sequence[tuple[int, float]], min_gain: float = 0.05) -> int | None:
    """Most cost-effective size from (size, saturated throughput) pairs (throughput 0 = infeasible)."""
    steps = [(s, t) for s, t in sorted(throughputs) if t > 0]
    if not steps:
        return None
    best_size = steps[0][0]
    best_gain = steps[0][1] / steps[0][0]
    prev_size, prev_thr = steps[0]
    for size, thr in steps[1:]:
        if thr < prev_thr * (1 + min_gain):
            continue  # too little gain for the extra slice: skip the step
        gain = (thr - prev_thr) / (size - prev_size)
        if gain > best_gain + 1e-12:
            best_gain, best_size = gain, size
        prev_size, prev_thr = size, thr
    return best_size


def poisson_quantile(mean: float, q: float) -> float:
    """Smallest k with P(N <= k) >= q for N ~ Poisson(mean) (normal approximation when large)."""
    if mean <= 0 or q <= 0:
        return max(mean, 0.0)
    if mean > 400:
        z = _norm_ppf(q)
        return math.ceil(mean + z * math.sqrt(mean) + (z * z - 1) / 6)
    p = math.exp(-mean)
    cdf = p
    k = 0
    while cdf < q and k < 100_000:
        k += 1
        p *= mean / k
        cdf += p
    return float(k)


def raised_rate(rate_rps: float, q: float, window_s: float = 1.0) -> float:
    """The rate to plan for: the q-quantile of the arrivals in `window_s`, per second."""
    if q <= 0 or rate_rps <= 0:
        return max(rate_rps, 0.0)
    return max(rate_rps, poisson_quantile(rate_rps * window_s, q) / window_s)


def _norm_ppf(q: float) -> float:
    """Inverse standard normal CDF (Acklam's rational approximation; |error| < 1e-8)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if q < 0.02425:
        t = math.sqrt(-2 * math.log(q))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1)
    if q > 1 - 0.02425:
        return -_norm_ppf(1 - q)
    t = q - 0.5
    r = t * t
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
