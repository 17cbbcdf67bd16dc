"""Table-driven tests of each planning rule."""

from __future__ import annotations

import math

import pytest

from modelplex.planning.rules import p_eff, poisson_quantile, raised_rate, residue, saturated, timeshare

# latency of batch b = 2 + b (ms)
LAT = [2.0 + b for b in range(1, 33)]


@pytest.mark.parametrize(
    "slo_ms, alpha, batch",
    [
        (6.0, 1.0, 1),  # 2 * 3 = 6 <= 6
        (5.9, 1.0, None),  # even batch 1 misses SLO/2
        (20.0, 1.0, 8),  # 2 * 10 = 20
        (21.9, 1.0, 8),  # 2 * 11 = 22 > 21.9
        (20.0, 1.25, 6),  # 2 * 8 * 1.25 = 20
        (1000.0, 1.0, 32),  # capped by the largest batch
    ],
)
def test_saturated_rule_is_largest_batch_within_half_the_slo(slo_ms: float, alpha: float, batch: int | None) -> None:
    cfg = saturated(LAT, slo_ms, alpha)
    if batch is None:
        assert cfg is None
        return
    assert cfg is not None and cfg.batch == batch
    assert cfg.throughput_rps == pytest.approx(1000 * batch / ((2 + batch) * alpha))


@pytest.mark.parametrize(
    "slo_ms, rate_rps, batch, duty_ms",
    [
        (30.0, 1000.0, None, 0.0),  # a run (2 + b ms) always outlasts filling b (b ms)
        (30.0, 500.0, 9, 18.0),  # fill 18 + L(9)=11 = 29 <= 30; b=10: 20 + 12 > 30
        (100.0, 100.0, 8, 80.0),  # fill 80 + L(8)=10 = 90 <= 100; b=9: 90 + 11 > 100
        (10.0, 100.0, None, 0.0),  # fill of one request (10 ms) + 3 > 10
        (30.0, 5000.0, None, 0.0),  # cannot keep up: L(b) > b / r for every b
    ],
)
def test_residue_rule(slo_ms: float, rate_rps: float, batch: int | None, duty_ms: float) -> None:
    cfg = residue(LAT, slo_ms, rate_rps)
    if batch is None:
        assert cfg is None
        return
    assert cfg is not None
    b = cfg.batches[0]
    fill = 1000 * b / rate_rps
    # the rule: L(b) <= b/r and L(b) + b/r <= SLO, for the largest such b
    assert LAT[b - 1] <= fill + 1e-9 and LAT[b - 1] + fill <= slo_ms + 1e-9
    nxt = b + 1
    assert not (LAT[nxt - 1] <= 1000 * nxt / rate_rps and LAT[nxt - 1] + 1000 * nxt / rate_rps <= slo_ms)
    assert b == batch and cfg.duty_ms == pytest.approx(duty_ms)
    assert cfg.duty_ms == pytest.approx(max(fill, LAT[b - 1]))


@pytest.mark.parametrize(
    "rates, slos, feasible",
    [
        ([100.0, 100.0], [60.0, 60.0], True),
        ([100.0], [10.0], True),  # a 7 ms cycle: batch 1 (3 ms) + 7 ms wait = 10
        ([100.0], [5.9], False),  # even the shortest cycle (3 ms) + its 3 ms run > 5.9
        ([200.0, 200.0, 200.0], [40.0, 40.0, 40.0], True),
        ([900.0, 900.0], [15.0, 15.0], False),  # turns cannot keep up within the SLO
    ],
)
def test_timeshare_duty_cycle_feasibility(rates: list[float], slos: list[float], feasible: bool) -> None:
    cfg = timeshare([LAT] * len(rates), slos, rates)
    assert (cfg is not None) == feasible
    if cfg is not None:
        busy = sum(cfg.latencies_ms)
        assert busy <= cfg.duty_ms + 1e-9  # the turns fit in the cycle
        assert cfg.duty_ms + busy <= min(slos) + 1e-9  # nobody waits past the SLO
        for b, r in zip(cfg.batches, rates):
            assert b >= math.floor(cfg.duty_ms * r / 1000 + 1e-9)  # a turn serves a cycle's arrivals


@pytest.mark.parametrize(
    "throughputs, expected",
    [
        ([(20, 100.0), (40, 200.0), (60, 300.0), (100, 500.0)], 20),  # linear: the smallest
        ([(20, 100.0), (40, 400.0), (60, 450.0), (100, 500.0)], 40),  # big jump 20->40
        ([(20, 0.0), (40, 100.0), (100, 400.0)], 100),  # 40->100 gains 5/% vs 2.5/% from 0->40
        ([(20, 100.0), (40, 103.0), (60, 340.0)], 60),  # 20->40 gains < 5 %: skipped, 20->60 wins
        ([(20, 0.0), (40, 0.0)], None),
    ],
)
def test_p_eff(throughputs: list[tuple[int, float]], expected: int | None) -> None:
    assert p_eff(throughputs, 0.05) == expected


@pytest.mark.parametrize("mean, q, expected", [(1.0, 0.99, 4), (10.0, 0.99, 18), (100.0, 0.99, 124), (0.0, 0.99, 0)])
def test_poisson_quantile(mean: float, q: float, expected: int) -> None:
    assert poisson_quantile(mean, q) == expected


def test_raised_rate_large_rates_use_normal_approximation() -> None:
    assert raised_rate(10_000, 0.99) == pytest.approx(10_000 + 2.326 * 100, abs=2)
    assert raised_rate(50, 0.0) == 50
