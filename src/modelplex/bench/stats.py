"""What one rung of a bench measured, per model (pure): offered rate, goodput, latency
percentiles, SLO attainment and every request that did not get a good answer, by reason.

Latency counts from a request's scheduled arrival (open loop: the client's own delay is in it).
Attainment is good answers over ALL arrivals, so rejections, timeouts and requests the client
could not send all count against it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelplex.bench.openloop import CLIENT_LATE, CONN_ERROR, NOT_SENT, UNANSWERED

PERCENTILES = (50, 95, 99)
_DEADLINE_WORDS = ("deadline", "passed before", "slo", "too late", "cannot be met")
_BUSY_WORDS = ("queue", "longest wait", "try again", "busy", "limit")
_UNAVAILABLE_WORDS = ("not placed", "not available", "not running", "exited", "worker")


def reason(status: int, message: str = "") -> str:
    """The class of a request that got no 200: `503 busy`, `503 deadline`, `429`, `timeout`, ..."""
    if status == CLIENT_LATE:
        return "client-late"
    if status == NOT_SENT:
        return "client-late (in-flight bound)"
    if status == UNANSWERED:
        return "timeout"
    if status == CONN_ERROR:
        return "connection error"
    if status != 503:
        return str(status)
    text = message.lower()
    for words, name in ((_DEADLINE_WORDS, "deadline"), (_BUSY_WORDS, "busy"), (_UNAVAILABLE_WORDS, "unavailable")):
        if any(w in text for w in words):
            return f"503 {name}"
    return "503 other"


def percentile_ms(latencies_s: np.ndarray, q: float) -> float | None:
    return float(np.percentile(latencies_s, q) * 1e3) if len(latencies_s) else None


@dataclass
class ModelRung:
    """One model at one rate."""

    model: str
    rate_rps: float  # the configured rate (for a trace as is: arrivals / duration)
    duration_s: float
    arrivals: int = 0
    sent: int = 0  # written to the server (answered or not)
    ok: int = 0  # answered 200
    good: int = 0  # answered 200 within the SLO
    slo_ms: float | None = None
    latencies_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # of the 200 answers
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def offered_rps(self) -> float:
        return self.arrivals / self.duration_s if self.duration_s else 0.0

    @property
    def goodput_rps(self) -> float:
        return self.good / self.duration_s if self.duration_s else 0.0

    @property
    def attainment(self) -> float | None:
        return self.good / self.arrivals if self.arrivals else None

    def to_json(self) -> dict[str, object]:
        def r(x: float | None, nd: int = 3) -> float | None:
            return round(x, nd) if x is not None and math.isfinite(x) else None

        return {
            "model": self.model, "rate_rps": r(self.rate_rps), "duration_s": r(self.duration_s),
            "offered_rps": r(self.offered_rps), "arrivals": self.arrivals, "sent": self.sent, "ok": self.ok,
            "good": self.good, "slo_ms": self.slo_ms, "goodput_rps": r(self.goodput_rps),
            "throughput_rps": r(self.ok / self.duration_s if self.duration_s else 0.0),
            "slo_attainment": r(self.attainment, 4),
            **{f"p{q}_ms": r(percentile_ms(self.latencies_s, q)) for q in PERCENTILES},
            "rejections": dict(sorted(self.rejections.items())),
        }


def summarize(names: Sequence[str], slos: Sequence[float | None], rates: Sequence[float], duration_s: float,
              arrays: Mapping[str, np.ndarray], messages: Mapping[int, str]) -> list[ModelRung]:
    """Per model, from the open loop's records (first attempts only: a bench does not retry)."""
    kind, status = arrays["kind"], arrays["status"]
    latency = arrays["done"] - arrays["sched"]
    sent = ~np.isnan(arrays["sent"]) if len(arrays["sent"]) else np.zeros(0, dtype=bool)
    out = []
    for k, name in enumerate(names):
        mine = kind == k
        ok = mine & (status == 200)
        lat = latency[ok]
        slo = slos[k]
        good = int((lat <= slo / 1e3).sum()) if slo is not None else int(ok.sum())
        counts: Counter[str] = Counter()
        for idx in np.flatnonzero(mine & (status != 200)):
            counts[reason(int(status[idx]), messages.get(int(idx), ""))] += 1
        out.append(ModelRung(name, rates[k], duration_s, arrivals=int(mine.sum()), sent=int((mine & sent).sum()),
                             ok=int(ok.sum()), good=good, slo_ms=slo, latencies_s=np.sort(lat), rejections=dict(counts)))
    return out
