"""Statistics of one rung: percentiles, goodput, attainment and rejection reasons."""

from __future__ import annotations

import numpy as np
import pytest

from modelplex.bench.openloop import CLIENT_LATE, CONN_ERROR, NOT_SENT, UNANSWERED
from modelplex.bench.stats import percentile_ms, reason, summarize

NAN = float("nan")


@pytest.mark.parametrize("status,message,expected", [
    (CLIENT_LATE, "", "client-late"),
    (NOT_SENT, "", "client-late (in-flight bound)"),
    (UNANSWERED, "", "timeout"),
    (CONN_ERROR, "", "connection error"),
    (429, "slow down", "429"),
    (400, "bad input", "400"),
    (503, "model a: deadline cannot be met: predicted completion is 3.0 ms past the deadline", "503 deadline"),
    (503, "model a: the deadline passed before the answer was ready", "503 deadline"),
    (503, "model a: its queue would take longer than the server's longest wait of 1 s", "503 busy"),
    (503, "model a: queue is full (64 rows waiting)", "503 busy"),
    (503, "model a is not available: load failed", "503 unavailable"),
    (503, "something else", "503 other"),
])
def test_reason(status: int, message: str, expected: str) -> None:
    assert reason(status, message) == expected


def test_percentiles() -> None:
    lat = np.arange(1, 101) / 1e3  # 1..100 ms
    assert percentile_ms(lat, 50) == pytest.approx(50.5)
    assert percentile_ms(lat, 99) == pytest.approx(99.01)
    assert percentile_ms(np.zeros(0), 50) is None


def test_summarize_goodput_and_attainment() -> None:
    #            a ok 5ms, a ok 30ms, a 503, a late, b ok 40ms, b timeout
    arrays = {
        "kind": np.array([0, 0, 0, 0, 1, 1]),
        "sched": np.array([0.0, 0.1, 0.2, 0.3, 0.0, 0.5]),
        "sent": np.array([0.0, 0.1, 0.2, NAN, 0.0, 0.5]),
        "done": np.array([0.005, 0.13, 0.201, NAN, 0.04, NAN]),
        "status": np.array([200, 200, 503, CLIENT_LATE, 200, UNANSWERED]),
    }
    messages = {2: "model a: deadline cannot be met"}
    a, b = summarize(["a", "b"], [20.0, None], [4.0, 2.0], 2.0, arrays, messages)
    assert (a.arrivals, a.sent, a.ok, a.good) == (4, 3, 2, 1)
    assert a.goodput_rps == 0.5 and a.offered_rps == 2.0 and a.attainment == 0.25
    assert a.rejections == {"503 deadline": 1, "client-late": 1}
    assert a.to_json()["p50_ms"] == pytest.approx(17.5)
    assert (b.arrivals, b.ok, b.good) == (2, 1, 1)  # no SLO: every 200 is good
    assert b.attainment == 0.5 and b.rejections == {"timeout": 1}
    doc = b.to_json()
    assert doc["slo_attainment"] == 0.5 and doc["throughput_rps"] == 0.5 and doc["slo_ms"] is None
