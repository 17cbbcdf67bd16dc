"""The dashboard's per-second series and decision log (pure: time is passed in)."""

from __future__ import annotations

import pytest

from modelplex.serving.auth import Access, http_access
from modelplex.serving.stats import LATENCY_BUCKETS, LatencyHistogram, ModelStats, latency_edge_ms
from modelplex.serving.timeline import Counters, DecisionLog, TimeSeries, point_between, quantile_ms, within_ms


def make_stats(answered_ms: list[float], failed: int = 0, deadline: int = 0, rows: int = 0, batches: int = 0) -> ModelStats:
    st = ModelStats()
    for ms in answered_ms:
        st.success.add(ms / 1e3)
        st.latency.add(ms / 1e3)
    for _ in range(failed):
        st.fail.add(0.0)
    st.rejected_deadline = deadline
    st.inference_count, st.execution_count = rows, batches
    return st


def test_histogram_buckets_hold_their_latencies() -> None:
    h = LatencyHistogram()
    for ms in (0.01, 0.05, 1.0, 7.3, 49.9, 1e9):
        h.add(ms / 1e3)
        k = max(i for i, c in enumerate(h.counts) if c)
        if ms < 1e6:
            assert (latency_edge_ms(k - 1) if k else 0.0) < ms <= latency_edge_ms(k) * (1 + 1e-9)
        h.counts = [0] * LATENCY_BUCKETS
    assert latency_edge_ms(LATENCY_BUCKETS - 1) > 100_000  # the last bucket is past any deadline


@pytest.mark.parametrize("values_ms, q, expect_ms", [
    ([10.0] * 100, 0.5, 10.0),
    ([10.0] * 99 + [200.0], 0.99, 10.0),
    ([10.0] * 98 + [200.0] * 2, 0.99, 200.0),
    ([1.0] * 50 + [100.0] * 50, 0.5, 1.0),
])
def test_quantiles_are_within_a_bucket_of_the_truth(values_ms: list[float], q: float, expect_ms: float) -> None:
    h = LatencyHistogram()
    for ms in values_ms:
        h.add(ms / 1e3)
    got = quantile_ms(h.counts, q)
    assert got is not None and expect_ms / 1.2 <= got <= expect_ms * 1.2


def test_no_answers_no_quantile_and_goodput_counts_within_the_slo() -> None:
    assert quantile_ms([0] * LATENCY_BUCKETS, 0.99) is None
    h = LatencyHistogram()
    for ms in [5.0] * 30 + [80.0] * 10:
        h.add(ms / 1e3)
    assert within_ms(h.counts, 50.0) == pytest.approx(30)
    assert within_ms(h.counts, 1000.0) == pytest.approx(40)


def test_a_point_is_the_difference_of_two_samples_per_second() -> None:
    old = Counters.of(make_stats([5.0] * 10, rows=10, batches=10), 50.0)
    new = Counters.of(make_stats([5.0] * 30 + [80.0] * 10, failed=6, deadline=4, rows=50, batches=20), 50.0)
    p = point_between(old, new, 2.0)
    assert p.arrival_rps == pytest.approx((30 + 6) / 2)  # 30 answered and 6 refused since
    assert p.goodput_rps == pytest.approx(20 / 2)  # the 20 new 5 ms answers; 80 ms is over the SLO
    assert p.rejected_deadline_rps == pytest.approx(2.0) and p.rejected_other_rps == pytest.approx(1.0)
    assert p.rows_per_batch == pytest.approx(4.0)
    assert p.p99_ms is not None and p.p99_ms > 50.0
    assert p.p50_ms is not None and p.p50_ms < 6.0


def test_without_an_slo_every_answer_is_good_and_a_reset_counts_from_zero() -> None:
    old = Counters.of(make_stats([1.0] * 100), None)
    new = Counters.of(make_stats([900.0] * 7), None)  # reloaded: fresh statistics
    p = point_between(old, new, 1.0)
    assert p.arrival_rps == 7 and p.goodput_rps == 7 and p.rows_per_batch is None


def test_series_sample_on_a_fake_clock_and_keep_the_window() -> None:
    ts = TimeSeries(length=3)
    stats = ModelStats()
    ts.sample(100.0, {"m": Counters.of(stats, 10.0)})
    assert list(ts.times) == []  # a baseline only
    for k in range(1, 6):
        for _ in range(k):
            stats.success.add(0.001)
            stats.latency.add(0.001)
        ts.sample(100.0 + k, {"m": Counters.of(stats, 10.0), **({"late": Counters.of(ModelStats(), None)} if k >= 4 else {})})
    assert list(ts.times) == [103.0, 104.0, 105.0]
    cols = ts.columns(["m", "late"])
    assert cols["t"] == [103.0, 104.0, 105.0]
    assert cols["models"]["m"]["arrival_rps"] == [3.0, 4.0, 5.0]  # type: ignore[index]
    assert cols["models"]["late"]["arrival_rps"] == [None, None, 0.0]  # type: ignore[index]  # new at 104: baseline
    assert ts.columns(["m"], after=104.0)["t"] == [105.0]
    assert ts.columns(["m"], after=105.0)["t"] == []
    ts.sample(105.0, {"m": Counters.of(stats, 10.0)})  # the clock did not move: no point
    assert list(ts.times) == [103.0, 104.0, 105.0]


def test_decision_log_is_bounded_and_read_by_time() -> None:
    log = DecisionLog(length=3)
    for t in range(5):
        log.record(float(t), "planner", "re-plan", f"rates moved {t}")
    log.record(9.0, "api", "plan posted", "elastic: 2 slices", ok=False)
    assert [d.at_s for d in log.entries] == [3.0, 4.0, 9.0]
    assert [d.source for d in log.since(4.0)] == ["planner", "api"]
    assert log.since(4.0)[-1].to_json() == {"at_s": 9.0, "source": "api", "action": "plan posted",
                                            "detail": "elastic: 2 slices", "ok": False}


def test_the_dashboard_and_its_data_are_reads() -> None:
    for path in ("/dashboard", "/dashboard/dashboard.js", "/v2/dashboard/data", "/v2/dashboard/plan.png"):
        assert http_access("GET", path) is Access.INFER
