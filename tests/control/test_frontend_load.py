"""The frontend's measured CPU per request, and the controller handing it to the planner."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from modelplex.control.controller import Controller, ControllerConfig
from modelplex.control.frontend_load import DEFAULT_US_PER_REQUEST, FrontendLoad
from modelplex.core import Demand, DeviceKind, DeviceSpec
from modelplex.core.plan import Plan


@pytest.mark.parametrize("reports, expected_us, samples", [
    ([], DEFAULT_US_PER_REQUEST, 0),                              # nothing measured yet
    ([(100, 0.05)], DEFAULT_US_PER_REQUEST, 0),                   # too few arrivals: pooled
    ([(100, 0.05), (100, 0.03)], 400.0, 1),                       # pooled: 0.08 s / 200
    ([(1000, 0.1)], 100.0, 1),
    ([(1000, 0.1), (1000, 0.2)], 0.3 * 200 + 0.7 * 100, 2),       # EWMA, alpha 0.3
    ([(1000, -1.0)], 0.0, 1),                                     # a clock step back counts nothing
])
def test_frontend_load(reports: list[tuple[int, float]], expected_us: float, samples: int) -> None:
    load = FrontendLoad()
    for arrivals, cpu_s in reports:
        load.arrived(arrivals)
        load.cpu_used(cpu_s)
    assert load.us_per_request == pytest.approx(expected_us)
    assert load.samples == samples


def test_the_planner_gets_the_measured_cost_per_request() -> None:
    seen: list[float] = []

    def planner(demands: Sequence[Demand], frontend_us: float) -> Plan:
        seen.append(frontend_us)
        return Plan("fake", (DeviceSpec("cpu0", DeviceKind.CPU, 2),), ())

    ctl = Controller({"m": 100.0}, planner, ControllerConfig(alpha=1.0, min_interval_s=0.0))
    first = ctl.initial({"m": 100.0}, 0.0)
    ctl.applied(first, 0.0)
    ctl.observe("m", 0.1, 2000)
    ctl.frontend_cpu(0.25)  # 125 µs per request
    ctl.observe("m", 0.6, 0)
    decided = ctl.step(0.6)
    assert decided is not None
    assert seen == [DEFAULT_US_PER_REQUEST, 125.0]
    assert decided.frontend_us == 125.0



@pytest.mark.parametrize("measured_us, reason", [
    (None, None),        # nothing measured: the default the plan was made with stands
    (120.0, None),       # 1200 req/s planned x 120 µs = 0.14 cores: one core wanted, as before
    (600.0, None),       # 0.72 cores: still one core at 0.8 busy; the next re-plan uses 600 µs
    (900.0, "frontend cost moved: 200->900 µs per request (1->2 core(s) wanted)"),  # 1.08 cores: two wanted
])
def test_a_moved_frontend_cost_replans_when_the_cores_it_wants_change(measured_us: float | None, reason: str | None) -> None:
    seen: list[float] = []

    def planner(demands: Sequence[Demand], frontend_us: float) -> Plan:
        seen.append(frontend_us)
        return Plan("fake", (DeviceSpec("cpu0", DeviceKind.CPU, 4),), ())

    ctl = Controller({"m": 100.0}, planner, ControllerConfig(alpha=1.0, min_interval_s=0.0))
    first = ctl.initial({"m": 1000.0}, 0.0)  # planned for 1000 x 1.2 headroom = 1200 req/s, default 200 µs
    ctl.applied(first, 0.0)
    ctl.observe("m", 0.1, 500)  # 1000 req/s over the first interval: the rate the plan expected
    if measured_us is not None:
        ctl.frontend_cpu(500 * measured_us / 1e6)
    ctl.observe("m", 0.5, 0)
    decided = ctl.step(0.5)
    if reason is None:
        assert decided is None
        return
    assert decided is not None and decided.reason == reason
    assert decided.demands == first.demands  # the same demand, planned again beside a bigger frontend
    assert seen == [DEFAULT_US_PER_REQUEST, measured_us]
