"""The simulator drives the runtime's Controller: a rate step re-plans, steady load does not."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelplex.control.controller import Controller, ControllerConfig
from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning import plan as make_plan
from modelplex.planning.synthetic import cpu_profile
from modelplex.sim.arrivals import TraceSpec, generate
from modelplex.sim.replanning import simulate_replanning

PROFILES = [cpu_profile("mobilenetv2", 2), cpu_profile("googlenet", 2)]
SLO = {"googlenet": 400.0, "mobilenetv2": 200.0}
DEVICES = [DeviceSpec("cpu0", DeviceKind.CPU, 2)]


def controller() -> Controller:
    def planner(demands: Sequence[Demand], frontend_us: float) -> Plan:  # the simulator has no frontend
        return make_plan(demands, PROFILES, DEVICES, policy="elastic")

    return Controller(SLO, planner, ControllerConfig(alpha=0.5, min_interval_s=1.0))


def test_steady_load_keeps_the_first_plan() -> None:
    rates = [2.0, 4.0]  # googlenet, mobilenetv2 (sorted model order)
    trace = generate(TraceSpec("poisson"), rates, 30.0, np.random.default_rng(1))
    run = simulate_replanning(controller(), PROFILES, trace, 30.0, {"googlenet": 2.0, "mobilenetv2": 4.0})
    assert len(run.replans) <= 2  # the initial plan, at most one settling correction
    assert run.result.total.attainment >= 0.99


def test_rate_step_replans_and_recovers() -> None:
    spec = TraceSpec("step", steps=((0.0, 1.0), (10.0, 3.0)))
    trace = generate(spec, [5.0, 10.0], 30.0, np.random.default_rng(2))
    run = simulate_replanning(controller(), PROFILES, trace, 30.0, {"googlenet": 5.0, "mobilenetv2": 10.0})
    after = [t for t, _ in run.replans if t >= 10.0]
    assert after and after[0] < 14.0  # reacted within a few seconds (Poisson noise at these rates)
    last = run.replans[-1][1]
    assert last.demands[0].rate_rps > 10.0  # planned for the higher rate
    assert run.result.total.requests > 0 and run.result.total.attainment >= 0.95
