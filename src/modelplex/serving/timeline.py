"""What the dashboard shows over time: per-model series at one point per sample (arrivals,
goodput, p50/p99, rejections by reason) made from differences of the cumulative statistics, and
the log of plan and scaling decisions. Pure: `now` is passed in, nothing here reads a clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelplex.serving.stats import LATENCY_BUCKETS, ModelStats, latency_edge_ms

SERIES_FIELDS = ("arrival_rps", "goodput_rps", "p50_ms", "p99_ms", "rejected_deadline_rps", "rejected_other_rps", "rows_per_batch")


@dataclass(frozen=True)
class Counters:
    """A model's cumulative counters at one moment (a copy: the live stats keep counting)."""

    answered: int  # requests answered
    failed: int  # requests failed or refused, every reason
    rejected_deadline: int  # of those: refused or expired for their deadline
    rows: int  # rows inferred
    batches: int  # batches run
    latency_counts: tuple[int, ...]  # answers per latency bucket (stats.LatencyHistogram)
    slo_ms: float | None  # the model's SLO (None: none, every answer counts as good)

    @staticmethod
    def of(stats: ModelStats, slo_ms: float | None) -> "Counters":
        return Counters(stats.success.count, stats.fail.count, stats.rejected_deadline, stats.inference_count,
                        stats.execution_count, tuple(stats.latency.counts), slo_ms)


@dataclass(frozen=True)
class Point:
    """One model over one sampling interval (rates per second; None where nothing was answered)."""

    arrival_rps: float  # requests that arrived and were answered or refused
    goodput_rps: float  # requests answered within the SLO
    p50_ms: float | None  # median end-to-end latency of the answers
    p99_ms: float | None  # 99th percentile of the same
    rejected_deadline_rps: float  # refused or expired: the deadline could not be met
    rejected_other_rps: float  # refused or failed otherwise (full queues, errors, lost workers)
    rows_per_batch: float | None  # mean rows of the batches run


def quantile_ms(counts: Iterable[int], q: float) -> float | None:
    """The q-quantile of bucketed latencies, interpolated within its bucket (log-spaced buckets:
    geometric interpolation); None for no answers."""
    cs = list(counts)
    total = sum(cs)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for k, c in enumerate(cs):
        if c and seen + c >= rank:
            lo = latency_edge_ms(k - 1) if k else 0.0
            hi = latency_edge_ms(k)
            frac = (rank - seen) / c
            return lo + (hi - lo) * frac if lo == 0.0 else lo * (hi / lo) ** frac
        seen += c
    return latency_edge_ms(len(cs) - 1)


def within_ms(counts: Iterable[int], limit_ms: float) -> float:
    """How many of the bucketed answers took at most `limit_ms` (the bucket it falls in, in part)."""
    good = 0.0
    for k, c in enumerate(counts):
        if not c:
            continue
        lo = latency_edge_ms(k - 1) if k else 0.0
        hi = latency_edge_ms(k)
        if hi <= limit_ms:
            good += c
        elif lo < limit_ms:
            good += c * (limit_ms - lo) / (hi - lo)
    return good


def point_between(old: Counters, new: Counters, dt_s: float) -> Point:
    """The interval from `old` to `new`; counters that went back (the model was reloaded with
    fresh statistics) count from zero."""
    if new.answered < old.answered or new.failed < old.failed or new.batches < old.batches:
        old = Counters(0, 0, 0, 0, 0, (0,) * LATENCY_BUCKETS, old.slo_ms)
    lat = [n - o for n, o in zip(new.latency_counts, old.latency_counts)]
    answered = new.answered - old.answered
    failed = new.failed - old.failed
    deadline = new.rejected_deadline - old.rejected_deadline
    batches = new.batches - old.batches
    good = float(answered) if new.slo_ms is None else min(float(answered), within_ms(lat, new.slo_ms))
    return Point(
        arrival_rps=(answered + failed) / dt_s,
        goodput_rps=good / dt_s,
        p50_ms=quantile_ms(lat, 0.50),
        p99_ms=quantile_ms(lat, 0.99),
        rejected_deadline_rps=deadline / dt_s,
        rejected_other_rps=max(0, failed - deadline) / dt_s,
        rows_per_batch=(new.rows - old.rows) / batches if batches else None,
    )


@dataclass
class TimeSeries:
    """The last `length` samples of every model, one point per sample; fed the cumulative counters
    by a sampler (once per interval, never per request)."""

    length: int = 300  # samples kept (5 minutes at one per second)
    times: deque[float] = field(init=False)  # sample times, oldest first
    points: deque[dict[str, Point]] = field(init=False)  # per sample: model -> point
    _last: dict[str, Counters] = field(default_factory=dict, init=False)  # counters at the previous sample
    _last_at: float | None = field(default=None, init=False)  # time of the previous sample

    def __post_init__(self) -> None:
        self.times = deque(maxlen=self.length)
        self.points = deque(maxlen=self.length)

    def sample(self, now: float, counters: Mapping[str, Counters]) -> None:
        """Record the interval since the previous sample (the first sample is only a baseline)."""
        if self._last_at is not None and now > self._last_at:
            dt_s = now - self._last_at
            self.times.append(now)
            self.points.append({m: point_between(self._last[m], c, dt_s) for m, c in counters.items() if m in self._last})
        self._last = dict(counters)
        self._last_at = now

    def columns(self, models: Iterable[str], after: float | None = None) -> dict[str, object]:
        """The samples after `after` (all: None) as columns, {"t": [...], "models": {m: {field: [...]}}},
        None where a model has no point (not served then)."""
        keep = [i for i, t in enumerate(self.times) if after is None or t > after]
        cols: dict[str, dict[str, list[float | None]]] = {}
        for m in models:
            pts = [self.points[i].get(m) for i in keep]
            cols[m] = {f: [None if p is None else _rounded(getattr(p, f)) for p in pts] for f in SERIES_FIELDS}
        return {"t": [round(self.times[i], 3) for i in keep], "models": cols}

    def latest(self, model: str) -> Point | None:
        return self.points[-1].get(model) if self.points else None


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


@dataclass(frozen=True)
class Decision:
    """One decision that changed what runs: a plan applied, or a scaling step."""

    at_s: float  # clock time it was decided
    source: str  # who decided: "planner" (the re-planning loop), "api" (a posted plan), "autoscaler"
    action: str  # what: "initial plan", "re-plan", "plan posted", "scale-up", ...
    detail: str  # why, and what it came to
    ok: bool = True  # False: it could not be carried out (detail says why)

    def to_json(self) -> dict[str, object]:
        return {"at_s": round(self.at_s, 3), "source": self.source, "action": self.action, "detail": self.detail, "ok": self.ok}


@dataclass
class DecisionLog:
    """The last `length` decisions, oldest first."""

    length: int = 200  # decisions kept
    entries: deque[Decision] = field(init=False)  # the decisions

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.length)

    def record(self, at_s: float, source: str, action: str, detail: str, ok: bool = True) -> Decision:
        d = Decision(at_s, source, action, detail, ok)
        self.entries.append(d)
        return d

    def since(self, at_s: float) -> list[Decision]:
        """Decisions at or after `at_s`, oldest first."""
        return [d for d in self.entries if d.at_s >= at_s]
