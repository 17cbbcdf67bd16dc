"""The frontend as a tenant of the host CPU: cores kept for it, and plans made beside it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from modelplex.core import Demand, DeviceKind, DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning import plan as make_plan
from modelplex.planning.frontend import (
    frontend_cores, frontend_load, kept_cores, plan_beside_frontend, planner_beside_frontend)
from modelplex.planning.synthetic import cpu_profile, gpu_profile

PROFILES = [cpu_profile("mobilenetv2", 8)]


def host(cores: int) -> DeviceSpec:
    return DeviceSpec("cpu0", DeviceKind.CPU, cores)


def demand(rate_rps: float) -> list[Demand]:
    return [Demand("mobilenetv2", rate_rps, 200.0)]


def planned(devices: Sequence[DeviceSpec], demands: list[Demand], us: float) -> Plan:
    return planner_beside_frontend("elastic", PROFILES, devices)(demands, us)


@pytest.mark.parametrize("rate, us, capacity, cores", [
    (100, 200, 1, 0),     # one core: the frontend shares it
    (100, 200, 2, 1),     # little load: still one core, where there are two or more
    (4000, 200, 8, 1),    # 0.8 cores of load, 0.8 busy
    (4001, 200, 8, 2),    # just past one core at 0.8
    (10000, 300, 8, 4),   # 3 cores of load -> ceil(3 / 0.8)
    (50000, 300, 8, 7),   # never every core
    (0, 200, 4, 1),
])
def test_frontend_cores(rate: float, us: float, capacity: int, cores: int) -> None:
    assert frontend_cores(demand(rate), us, capacity) == cores


def test_frontend_load_sums_every_model() -> None:
    demands = [Demand("a", 1000, 100), Demand("b", 3000, 100)]
    assert frontend_load(demands, 250) == pytest.approx(1.0)
    assert frontend_load(demands, -5) == 0.0


@pytest.mark.parametrize("rate, us, kept, slice_cores", [
    (50, 200, (0,), {1, 2, 3}),          # little load, the model fits on three cores: core 0 is the frontend's
    (100, 9000, (0, 1), {2, 3}),         # 0.9 cores of frontend load: two kept, the model fits on two
    (250, 9000, (0,), {1, 2, 3}),        # three wanted, but the model needs three cores: one kept
    (320, 200, (), {0, 1, 2, 3}),        # the model needs every core: the frontend shares them
])
def test_plan_beside_frontend_keeps_cores_while_the_models_fit(
        rate: float, us: float, kept: tuple[int, ...], slice_cores: set[int]) -> None:
    demands = demand(rate)
    whole = make_plan(demands, PROFILES, [host(4)])
    p = planned([host(4)], demands, us)
    assert p.devices == (host(4),)
    assert kept_cores(p) == {"cpu0": kept}
    assert {c for s in p.slices for c in s.slice.cpus} == slice_cores
    if kept:
        assert sum(p.unserved.values()) == 0.0
    else:
        assert p == whole  # exactly the plan on every core


def test_the_most_cores_that_still_fit_are_kept() -> None:
    # 4 cores of frontend load wants 5 cores kept (of 7 allowed); the model needs 3 of the 8
    demands = demand(180)
    need = next(n for n in range(1, 9) if not make_plan(demands, PROFILES, [host(n)]).unserved)
    p = planned([host(8)], demands, 4 / 180 * 1e6)
    assert len(kept_cores(p)["cpu0"]) == min(5, 8 - need)


def test_gpu_devices_are_planned_as_they_are() -> None:
    profiles = [gpu_profile("mobilenetv2")]
    demands = demand(100)
    devices = [DeviceSpec("gpu0", DeviceKind.GPU_MPS, 100)]
    p = plan_beside_frontend(lambda devs: make_plan(demands, profiles, devs), devices, demands, 200)
    assert p == make_plan(demands, profiles, devices)
    assert kept_cores(p) == {}


def test_kept_cores_of_a_slice_without_exact_cores_is_none() -> None:
    p = make_plan(demand(50), PROFILES, [host(4)])
    loose = Plan(p.policy, p.devices, tuple(
        s.__class__(s.slice_id, s.slice.__class__("cpu0", s.slice.size), s.assignments, s.duty_cycle_ms, s.utilisation)
        for s in p.slices))
    assert kept_cores(loose) == {"cpu0": ()}
