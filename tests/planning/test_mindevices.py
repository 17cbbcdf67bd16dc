"""`--minimize-devices`: the fewest devices, never below the lower bound, never worse than the
policies it starts from, with valid layouts and memory."""

from __future__ import annotations

import math

import pytest
from planning_builders import gpus, make_demand, make_profile

from modelplex.core import Demand
from modelplex.planning import PlannerConfig, check_plan, plan, solve_min_devices
from modelplex.planning.builder import Builder
from modelplex.planning.context import build_context
from modelplex.planning.elastic import Variant, place_rate
from modelplex.planning.mindevices import device_lower_bound, repack, seat_lower_bound
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import MODELS, gpu_profiles

NO_RAISE = PlannerConfig(rate_quantile=0.0)
MIX = ["resnet50", "vgg16", "mobilenetv2", "bert"]


@pytest.mark.parametrize("spec", ["gpu:24", "mig:24@a100-80gb", "mig:24@h100-80gb"])
@pytest.mark.parametrize("rate_rps", [500.0, 8000.0, 30000.0])
def test_min_devices_is_valid_and_between_the_bound_and_the_policies(spec: str, rate_rps: float) -> None:
    profs = gpu_profiles(MIX, mig_processes=(1, 2, 3))
    dem = [Demand(n, rate_rps, MODELS[n].slo_ms) for n in MIX]
    devices = parse_devices(spec)
    res = solve_min_devices(dem, profs, devices)
    assert not res.plan.unserved
    assert check_plan(res.plan, dem, profs) == []
    assert res.lower_bound <= res.devices and res.gap == res.devices - res.lower_bound
    for policy in ("elastic", "temporal", "exclusive"):
        assert res.devices <= len(plan(dem, profs, devices, policy).devices), policy


def test_lower_bound_is_total_work_over_capacity() -> None:
    # L(b, s) = 2 + 0.5 b 100 / s (no safety factor), SLO 40: the SLO/2 rule gives 20 ms batches.
    # A 50 % slice runs b = 18 in 20 ms: 900 rps per 50 units, the best of the menu (100 %: b is
    # capped at 32, 18 ms -> 1778 rps). So 1800 rps per device at best.
    exact = PlannerConfig(rate_quantile=0.0, safety_factor=1.0)
    prof = make_profile("a")
    ctx = build_context([make_demand("a", 1800 * 3.5, 40)], [prof], gpus(10), exact)
    assert device_lower_bound(ctx) == pytest.approx(3.5)
    res = solve_min_devices([make_demand("a", 1800 * 3.5, 40)], [prof], gpus(10), exact)
    assert res.lower_bound == 4 and res.devices == 4 and res.gap == 0


def test_repack_empties_a_lightly_filled_device() -> None:
    profs = [make_profile(n) for n in "abc"]
    dem = [make_demand(n, 300, 60) for n in "abc"]
    ctx = build_context(dem, profs, gpus(4), NO_RAISE)
    b = Builder(ctx)
    for m in ctx.models:  # one model per device: what a naive pass might leave behind
        dev = b.open_device()
        assert dev is not None
        assert b.place(dev, 40, m, m.rate_rps) == pytest.approx(m.rate_rps)
    assert len(b.open_devices()) == 3
    removed = repack(b)
    assert removed >= 1 and sum(1 for d in b.slices if b.slices[d]) == 3 - removed
    p = b.to_plan("t")
    assert check_plan(p, dem, profs, NO_RAISE) == []
    assert all(math.isclose(p.served_rate_rps(n), 300) for n in "abc")


def test_repack_undoes_a_move_that_does_not_fit() -> None:
    prof = make_profile("a")
    dem = [make_demand("a", 1700 * 2, 40)]
    ctx = build_context(dem, [prof], gpus(3), NO_RAISE)
    b = Builder(ctx)
    place_rate(b, ctx.models[0], ctx.models[0].rate_rps, Variant())
    before = {d: list(s) for d, s in b.slices.items()}
    assert repack(b) == 0 and b.slices == before


def test_small_instances_try_the_exact_program_unless_at_the_bound() -> None:
    names = ["densenet161", "vgg16"]
    profs = gpu_profiles(names, mig_processes=(1, 2, 3, 4))
    dem = [Demand(n, 20000, MODELS[n].slo_ms) for n in names]
    cfg = PlannerConfig(time_limit_s=3.0, max_batch=128)
    res = solve_min_devices(dem, profs, parse_devices("mig:32@a100-80gb"), cfg)
    assert res.gap > 0 and res.exact_status in ("OPTIMAL", "FEASIBLE")
    assert "optimal" in res.candidates and res.devices <= res.candidates["optimal"]
    big = solve_min_devices(dem, profs, parse_devices("mig:32@a100-80gb"), cfg, exact_max_models=1)
    assert big.exact_status == "skipped"
    easy = solve_min_devices([Demand("vgg16", 3000, 142)], profs, parse_devices("mig:8"))
    assert easy.gap == 0 and easy.exact_status == "not needed (at the bound)"


def test_min_devices_is_a_policy() -> None:
    profs = gpu_profiles(["resnet50"])
    dem = [Demand("resnet50", 5000, 108)]
    p = plan(dem, profs, parse_devices("mig:4"), "min-devices")
    assert p.policy == "min-devices" and not p.unserved


@pytest.mark.parametrize("models, per_slice, temporal, expected", [(11, 3, 8, 2), (7, 3, 8, 1), (13, 3, 4, 3), (6, 3, 2, 1)])
def test_every_model_needs_a_seat(models: int, per_slice: int, temporal: int, expected: int) -> None:
    profs = [make_profile(f"m{i}") for i in range(models)]
    dem = [make_demand(f"m{i}", 10, 100) for i in range(models)]
    cfg = PlannerConfig(max_models_per_slice=per_slice, max_models_per_device_temporal=temporal)
    ctx = build_context(dem, profs, gpus(4), cfg)  # MPS: two slices per GPU
    assert seat_lower_bound(ctx) == expected
    res = solve_min_devices(dem, profs, gpus(8), cfg, exact_max_models=0)
    assert res.lower_bound >= expected and res.devices >= res.lower_bound
