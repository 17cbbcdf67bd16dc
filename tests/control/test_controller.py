"""Re-planning decisions on a fake clock (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from modelplex.control.attainment import AttainmentWindow
from modelplex.control.controller import Controller, ControllerConfig
from modelplex.control.rates import RateEstimator
from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import Plan


def fake_planner(calls: list[tuple[Demand, ...]]) -> object:
    def planner(demands: Sequence[Demand], frontend_us: float) -> Plan:
        calls.append(tuple(demands))
        return Plan("fake", (DeviceSpec("cpu0", DeviceKind.CPU, 2),), ())

    return planner


def drive(ctl: Controller, rate_rps: float, start_s: float, end_s: float, step_s: float = 0.1) -> list[float]:
    """Feed arrivals at a steady rate; return the times at which step() re-planned."""
    replans: list[float] = []
    t = start_s
    while t < end_s:
        ctl.observe("m", t, count=int(round(rate_rps * step_s)))
        decided = ctl.step(t)
        if decided is not None:
            replans.append(t)
            ctl.applied(decided, t)
        t = round(t + step_s, 6)
    return replans


def make(calls: list[tuple[Demand, ...]], **kw: float) -> Controller:
    return Controller({"m": 100.0}, fake_planner(calls), ControllerConfig(**kw))  # type: ignore[arg-type]


def test_rate_estimator_smooths_per_interval() -> None:
    est = RateEstimator(sample_s=1.0, alpha=0.5)
    est.observe("a", 0.0, 10)
    assert est.rates(0.5) == {}
    est.observe("a", 1.2, 20)
    assert est.rates(1.5) == {"a": 10.0}  # first interval sets the rate
    assert est.rates(2.0) == {"a": 15.0}  # 10 + 0.5 * (20 - 10)
    assert est.rates(3.0) == {"a": 7.5}  # an empty interval pulls it down


def test_steady_load_does_not_replan_after_the_first() -> None:
    calls: list[tuple[Demand, ...]] = []
    ctl = make(calls)
    ctl.applied(ctl.initial({"m": 50.0}, 0.0), 0.0)
    replans = drive(ctl, 50.0, 0.0, 30.0)
    assert replans == []
    assert len(calls) == 1
    assert calls[0][0].rate_rps == pytest.approx(75.0)  # 1.5 x below 125 req/s


def test_rate_step_triggers_one_replan() -> None:
    calls: list[tuple[Demand, ...]] = []
    ctl = make(calls, alpha=1.0)  # no smoothing: the step shows in one interval
    ctl.applied(ctl.initial({"m": 50.0}, 0.0), 0.0)
    assert drive(ctl, 50.0, 0.0, 10.0) == []
    replans = drive(ctl, 150.0, 10.0, 30.0)
    assert len(replans) == 1 and 10.0 <= replans[0] <= 11.0
    assert calls[-1][0].rate_rps == pytest.approx(180.0)  # 1.2 x 150


def test_no_new_decision_while_one_is_being_applied() -> None:
    calls: list[tuple[Demand, ...]] = []
    ctl = make(calls, alpha=1.0, min_interval_s=0.0)
    ctl.initial({"m": 10.0}, 0.0)  # never reported applied
    assert drive(ctl, 500.0, 0.0, 5.0) == []


@pytest.mark.parametrize(("rate", "expected"), [(10.0, 15.0), (200.0, 240.0), (0.0, 0.5)])
def test_target_rate_headroom(rate: float, expected: float) -> None:
    ctl = make([])
    assert ctl.target_rate(rate) == pytest.approx(expected)


def test_failed_planning_backs_off() -> None:
    attempts: list[float] = []

    def failing(demands: Sequence[Demand], frontend_us: float) -> Plan:
        attempts.append(demands[0].rate_rps)
        raise ValueError("cannot place")

    ctl = Controller({"m": 10.0}, failing, ControllerConfig(alpha=1.0, min_interval_s=2.0))
    for t in (0.0, 0.6, 1.2, 1.8, 2.4, 3.0):
        ctl.observe("m", t, 50)
        try:
            ctl.step(t)
        except ValueError:
            pass
    assert len(attempts) == 2  # at 0.6 (first interval closed), then not before 2.6


def test_attainment_window() -> None:
    w = AttainmentWindow(window_s=2.0)
    for i in range(10):
        w.record(0.5, i < 9)
    assert w.attainment(0.9) == pytest.approx(0.9)
    w.record(3.5, True)
    assert w.counts(3.6) == (1, 1)  # the old second fell out of the window
