"""Arrival times of one rung of a bench (pure, seeded): Poisson, gamma with a burstiness (the
coefficient of variation of the gaps; 1 is Poisson, above 1 bursty, below 1 smoother), or a trace
scaled to the rung's rate. Every stream is bounded by the rung's duration."""

from __future__ import annotations

import numpy as np

from modelplex.bench.config import BenchConfig, Trace

MAX_ARRIVALS = 5_000_000  # per rung: a bound on memory whatever the config says


def gaps(rng: np.random.Generator, rate: float, n: int, cv: float) -> np.ndarray:
    """n gaps with mean 1/rate: exponential (cv 1) or gamma with shape 1/cv²."""
    if cv == 1.0:
        return rng.exponential(1.0 / rate, n)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / (rate * shape), n)


def renewal(rng: np.random.Generator, rate: float, duration_s: float, cv: float = 1.0) -> np.ndarray:
    """Arrival times in [0, duration_s) of a renewal process at `rate` req/s."""
    if rate <= 0 or duration_s <= 0:
        return np.zeros(0)
    expect = rate * duration_s
    n = int(min(MAX_ARRIVALS, expect + 6 * cv * np.sqrt(expect) + 16))
    times = np.cumsum(gaps(rng, rate, n, cv))
    return times[times < duration_s]


def scaled_trace(trace: Trace, rate: float | None, duration_s: float) -> np.ndarray:
    """The trace's times, compressed or stretched so that its mean rate is `rate` (None: as is),
    cut at `duration_s`."""
    times = np.asarray(trace.times_s, dtype=float)
    if rate is not None and len(times) > 1 and times[-1] > 0:
        own = (len(times) - 1) / times[-1]
        times = times * (own / rate)
    return times[times < duration_s] if duration_s > 0 else times


def rung(config: BenchConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted arrival times, model index of each) for rung `index` of the ladder."""
    seed = np.random.SeedSequence([config.seed, index])
    rngs = [np.random.default_rng(s) for s in seed.spawn(len(config.models) + 1)]
    if config.trace is not None:
        return _trace_rung(config, config.trace, index, rngs[-1])
    times, kinds = [], []
    for k, m in enumerate(config.models):
        t = renewal(rngs[k], m.rates[index], config.duration_s, config.cv if config.arrival == "gamma" else 1.0)
        times.append(t)
        kinds.append(np.full(len(t), k, dtype=np.int64))
    all_t, all_k = np.concatenate(times), np.concatenate(kinds)
    order = np.argsort(all_t, kind="stable")
    return all_t[order], all_k[order]


def _trace_rung(config: BenchConfig, trace: Trace, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    models = config.models
    total = sum(m.rates[index] for m in models) if models[0].rates else None
    times = scaled_trace(trace, total, config.duration_s)
    by_name = {m.label: k for k, m in enumerate(models)} | {m.name: k for k, m in enumerate(models)}
    weights = np.array([m.rates[index] if m.rates else 1.0 for m in models])
    drawn = rng.choice(len(models), size=len(times), p=weights / weights.sum())
    named = [by_name.get(name, -1) if name is not None else -1 for name in trace.models[: len(times)]]
    kinds = np.where(np.asarray(named, dtype=np.int64) >= 0, np.asarray(named, dtype=np.int64), drawn)
    return times, kinds.astype(np.int64)
