"""Statistics over openloop.Records: answers by status, unanswered, late answers, percentiles,
per-second series, the worst second and the recovery time after a fault."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common import Kind
from openloop import CONN_ERROR, NOT_SENT, UNANSWERED, Records


@dataclass
class Table:
    """Per-attempt arrays with each answer judged: `t` is the arrival (scheduled) time."""

    kind: np.ndarray
    request: np.ndarray
    attempt: np.ndarray
    t: np.ndarray
    status: np.ndarray
    latency_s: np.ndarray  # answer - send (NaN without an answer)
    lag_s: np.ndarray  # send - scheduled: the client's own delay (NaN when not sent)
    done_s: np.ndarray  # when the answer came, from the run's start (NaN without an answer)
    good: np.ndarray  # answered 200 within the kind's bound (its deadline, else the stated bound)
    late: np.ndarray  # answered 200 after the deadline it carried
    has_deadline: np.ndarray

    @classmethod
    def of(cls, rec: Records, kinds: list[Kind]) -> "Table":
        a = rec.arrays()
        kind = a["kind"].astype(int)
        status = a["status"].astype(int)
        lat = a["done"] - a["sent"]
        bound = np.array([k.bound_s for k in kinds])[kind] if len(kind) else np.zeros(0)
        deadline = np.array([k.deadline_s if k.deadline_s is not None else math.inf for k in kinds])[kind] if len(kind) else np.zeros(0)
        ok = status == 200
        with np.errstate(invalid="ignore"):
            good = ok & (lat <= bound)
            late = ok & (lat > deadline)
        return cls(kind, a["request"].astype(int), a["attempt"].astype(int), a["sched"], status, lat,
                   a["sent"] - a["sched"], a["done"], good, late, np.isfinite(deadline))

    def mask(self, kinds: list[int], t_from: float = -math.inf, t_to: float = math.inf) -> np.ndarray:
        return np.isin(self.kind, kinds) & (self.t >= t_from) & (self.t < t_to)


def pct(values: np.ndarray, q: float) -> float | None:
    v = values[np.isfinite(values)]
    return round(float(np.percentile(v, q)) * 1e3, 2) if len(v) else None


def counts(tb: Table, m: np.ndarray) -> dict[str, int]:
    """Attempts in the mask by outcome."""
    s = tb.status[m]
    known = {200, 503, 504, 429, NOT_SENT, UNANSWERED, CONN_ERROR}
    return {
        "arrivals": int(m.sum()),
        "not_sent_by_client": int((s == NOT_SENT).sum()),
        "sent": int((s != NOT_SENT).sum()),
        "200": int((s == 200).sum()),
        "503": int((s == 503).sum()),
        "504": int((s == 504).sum()),
        "429": int((s == 429).sum()),
        "conn_error": int((s == CONN_ERROR).sum()),
        "other": int((~np.isin(s, list(known))).sum()),
        "unanswered": int((s == UNANSWERED).sum()),
        "late_200": int(tb.late[m].sum()),
        "with_deadline": int((tb.has_deadline[m] & (s != NOT_SENT)).sum()),
        "good": int(tb.good[m].sum()),
    }


def latency(tb: Table, m: np.ndarray) -> dict[str, float | None]:
    """p50/p99 of the 200 answers (ms) and the client's own send delay (p99, ms)."""
    ok = m & (tb.status == 200)
    return {"p50_ms": pct(tb.latency_s[ok], 50), "p99_ms": pct(tb.latency_s[ok], 99),
            "max_ms": pct(tb.latency_s[ok], 100), "client_lag_p99_ms": pct(tb.lag_s[m], 99)}


def per_second(tb: Table, kinds: list[int], t_from: float, t_to: float, width: float = 1.0) -> list[dict[str, float | int | None]]:
    """Windows of `width` s from t_from: arrivals, good answers, good share, p99 of 200s."""
    out: list[dict[str, float | int | None]] = []
    t = t_from
    while t < t_to - 1e-9:
        m = tb.mask(kinds, t, min(t + width, t_to))
        sent = m & (tb.status != NOT_SENT)
        n = int(sent.sum())
        out.append({"t": round(t, 2), "sent": n, "good": int(tb.good[sent].sum()),
                    "good_share": round(float(tb.good[sent].mean()), 4) if n else None,
                    "p99_ms": pct(tb.latency_s[sent & (tb.status == 200)], 99)})
        t += width
    return out


def worst_second(series: list[dict[str, float | int | None]]) -> dict[str, float | int | None] | None:
    """The window with the lowest good share (ties: the higher p99)."""
    rated = [w for w in series if w["good_share"] is not None]
    if not rated:
        return None
    return min(rated, key=lambda w: (float(w["good_share"] or 0.0), -float(w["p99_ms"] or 0.0)))


def recovery_s(tb: Table, kinds: list[int], t_event: float, t_end: float, need: float = 0.99,
               step: float = 0.1) -> float | None:
    """Seconds from `t_event` to the first 1-second window from which on every 1-second window
    (of requests arriving then) has >= `need` of its sent requests answered 200 within their
    bound; None when no such window starts before the last full second of the run."""
    m = tb.mask(kinds, t_event, t_end) & (tb.status != NOT_SENT)
    t, good = tb.t[m], tb.good[m]
    bins = int((t_end - t_event) // step)
    if bins < 10:
        return None
    idx = ((t - t_event) // step).astype(int)
    n_bin = np.bincount(idx, minlength=bins)[:bins]
    g_bin = np.bincount(idx, weights=good.astype(float), minlength=bins)[:bins]
    win = 10  # 1 s in steps
    n_win = np.convolve(n_bin, np.ones(win), "valid")  # windows starting at each step
    g_win = np.convolve(g_bin, np.ones(win), "valid")
    ok = (n_win == 0) | (g_win >= need * n_win - 1e-9)
    # a start d qualifies when the windows d, d+1 s, d+2 s, ... are all fine
    for d in range(len(ok)):
        if all(ok[d::win]):
            return round(d * step, 2)
    return None


def phase_summary(tb: Table, kinds: list[int], t_from: float, t_to: float) -> dict[str, object]:
    m = tb.mask(kinds, t_from, t_to)
    return {**counts(tb, m), **latency(tb, m)}
