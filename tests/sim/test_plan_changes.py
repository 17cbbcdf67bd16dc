"""Plan changes in the simulator: applied through the plan diff, one at a time like the runtime."""

from __future__ import annotations

import dataclasses

import numpy as np

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.planning.synthetic import cpu_profile
from modelplex.sim.arrivals import TraceSpec, generate
from modelplex.sim.engine import PlanChange, SimConfig, Simulator

PROFILES = [dataclasses.replace(cpu_profile("mobilenetv2", 2), load_s=0.2)]
CPU = DeviceSpec("cpu0", DeviceKind.CPU, 2)


def _plan(name: str, cpus: tuple[int, ...], batch: int) -> Plan:
    work = (ModelAssignment("mobilenetv2", batch, 10.0, 1.0, 0.0),)
    return Plan(name, (CPU,), (SlicePlan("cpu0/s0", SliceSpec("cpu0", len(cpus), cpus), work, 0.0, 0.1),))


def test_a_change_decided_while_another_starts_waits_for_it() -> None:
    trace = generate(TraceSpec("poisson"), [20.0], 3.0, np.random.default_rng(4))
    sim = Simulator(_plan("a", (0,), 4), PROFILES, {"mobilenetv2": 500.0}, SimConfig(spread=False))
    changes = [PlanChange(1.0, _plan("b", (0, 1), 4), "to b"), PlanChange(1.05, _plan("c", (1,), 2), "to c")]
    raw = sim.run_raw(trace, changes)
    (_, first, _), (b_at, b_ready, b_why), (c_at, c_ready, c_why) = raw.switches
    assert first == 0.0 and (b_why, c_why) == ("to b", "to c")
    assert b_at == 1.0 and abs(b_ready - 1.2) < 1e-9  # the measured start time of the new worker
    assert c_at == b_ready and abs(c_ready - (b_ready + 0.2)) < 1e-9  # waited for b, then started
    assert [info[2] for info in raw.slices] == [(0,), (0, 1), (1,)]
    served = raw.outcomes.slice[raw.outcomes.slice >= 0]
    assert set(served.tolist()) == {0, 1, 2}  # each plan served some requests
