"""Segments: profiles keyed by (slice, batch, processes); the planner picks how many worker
processes run in a slice, only where the profiles measured that count."""

from __future__ import annotations

import pytest

from modelplex.core import Demand
from modelplex.core.plan import Plan
from modelplex.planning import PlannerConfig, check_plan, plan, solve_min_devices
from modelplex.planning.builder import configure
from modelplex.planning.context import ModelInfo, build_context
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import MODELS, gpu_profiles

SMALL = ["mobilenetv2", "mnasnet", "googlenet"]  # launch-bound models: processes overlap launches


def demand(rate_rps: float) -> list[Demand]:
    return [Demand(n, rate_rps, MODELS[n].slo_ms) for n in SMALL]


def test_high_rates_use_several_processes_and_fewer_gpus() -> None:
    devices = parse_devices("mig:32@a100-80gb")
    seg = gpu_profiles(SMALL, mig_processes=(1, 2, 3, 4))
    one = gpu_profiles(SMALL)
    with_seg = solve_min_devices(demand(150000), seg, devices, exact_max_models=0)
    without = solve_min_devices(demand(150000), one, devices, exact_max_models=0)
    assert any(s.processes > 1 for s in with_seg.plan.slices)
    assert all(s.processes == 1 for s in without.plan.slices)
    assert with_seg.devices < without.devices
    assert check_plan(with_seg.plan, demand(150000), seg) == []


def test_max_processes_one_turns_segments_off() -> None:
    seg = gpu_profiles(SMALL, mig_processes=(1, 2, 3, 4))
    p = plan(demand(60000), seg, parse_devices("mig:32"), "elastic", PlannerConfig(max_processes=1))
    assert all(s.processes == 1 for s in p.slices)


def _cap(m: ModelInfo, k: int) -> float:
    """SLO/2-rule throughput of k processes on a whole MIG GPU."""
    return max(1000 * k * b / lat for b, lat in enumerate(m.curve(7, k), 1) if 2 * lat <= m.slo_ms)


@pytest.mark.parametrize("processes, between", [(1, 0.01), (1, 0.9), (2, 0.1), (2, 0.9), (3, 0.5), (4, 0.99)])
def test_a_slice_takes_the_fewest_processes_that_carry_its_rate(processes: int, between: float) -> None:
    seg = gpu_profiles(["mobilenetv2"], mig_processes=(1, 2, 3, 4))
    ctx = build_context([Demand("mobilenetv2", 1.0, 64)], seg, parse_devices("mig:1"), PlannerConfig(rate_quantile=0.0))
    m = ctx.models[0]
    caps = [_cap(m, k) for k in (1, 2, 3, 4)]
    assert caps == sorted(caps)  # more processes, more throughput (synthetic launch overlap)
    low = caps[processes - 2] if processes > 1 else 0.0
    rate = low + between * (caps[processes - 1] - low)  # more than k - 1 processes carry
    state = configure(7, [(m, rate)], 1.0)
    assert state is not None and state.processes == processes
    assert rate <= caps[processes - 1] and (processes == 1 or rate > caps[processes - 2])


def test_validator_checks_processes() -> None:
    seg = gpu_profiles(["mobilenetv2", "mnasnet"], mig_processes=(1, 2))
    dem = [Demand("mobilenetv2", 100, 64), Demand("mnasnet", 100, 62)]
    p = plan(dem, seg, parse_devices("mig:1"), "temporal")
    data = p.to_json()
    shared = dict(data["slices"][0], processes=2)  # type: ignore[index]
    data["slices"] = [shared]
    problems = check_plan(Plan.from_json(data), dem, seg)
    assert any("more than one needs a slice of one model" in line for line in problems), problems
    single = plan([dem[0]], seg, parse_devices("mig:1"), "elastic")
    data = single.to_json()
    data["slices"] = [dict(data["slices"][0], processes=3)]  # type: ignore[index]
    problems = check_plan(Plan.from_json(data), [dem[0]], seg)
    assert any("no profile with 3 processes" in line for line in problems), problems


def test_old_plan_json_reads_with_one_process() -> None:
    p = plan([Demand("mobilenetv2", 100, 64)], gpu_profiles(["mobilenetv2"]), parse_devices("mig:1"), "elastic")
    data = p.to_json()
    for s in data["slices"]:  # type: ignore[union-attr]
        for key in ("processes", "memory_mb", "mig_start"):
            s.pop(key)  # type: ignore[union-attr]
    for d in data["devices"]:  # type: ignore[union-attr]
        d.pop("gpu_model")  # type: ignore[union-attr]
    old = Plan.from_json(data)
    assert all(s.processes == 1 and s.slice.mig_start == -1 and s.memory_mb == 0 for s in old.slices)
    assert Plan.from_json(p.to_json()) == p
