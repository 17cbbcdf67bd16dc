"""Policies on small hand-made instances: split, merge, time sharing, scaling, interference, errors."""

from __future__ import annotations

import random

import pytest
from planning_builders import gpus, make_demand, make_profile

from modelplex.core import DeviceKind, DeviceSpec, InvalidArgumentError
from modelplex.planning import LinearInterference, PlannerConfig, check_plan, plan
from modelplex.planning.context import Curve
from modelplex.planning.menus import layout_ok
from modelplex.planning.synthetic import gpu_profiles

NO_RAISE = PlannerConfig(rate_quantile=0.0)


def test_fast_curve_matches_profile_latency() -> None:
    rng = random.Random(3)
    prof = gpu_profiles(["resnet50"])[0]
    curve = Curve(prof, "p50")
    for _ in range(300):
        size = rng.choice([10, 20, 30, 45, 50, 70, 100, 120])
        b = rng.randint(1, 40)
        assert curve.latency_ms(size, b) == pytest.approx(prof.latency_ms(size, b))


def test_small_model_gets_a_slice_not_a_device() -> None:
    p = plan([make_demand("a", 100, 100)], [make_profile("a")], gpus(4), "elastic", NO_RAISE)
    assert len(p.devices) == 1 and len(p.slices) == 1
    assert check_plan(p, [make_demand("a", 100, 100)], [make_profile("a")], NO_RAISE) == []


def test_split_gpu_into_p_and_rest_for_two_models() -> None:
    profs = [make_profile("a"), make_profile("b")]
    dem = [make_demand("a", 300, 100), make_demand("b", 300, 100)]
    p = plan(dem, profs, gpus(4), "elastic", NO_RAISE)
    assert len(p.devices) == 1
    sizes = sorted(s.slice.size for s in p.slices)
    assert sum(sizes) == 100 and len(sizes) == 2  # one GPU cut into p and 100 - p
    assert check_plan(p, dem, profs, NO_RAISE) == []


def test_rate_above_one_slice_is_split_across_slices() -> None:
    prof = make_profile("a")
    dem = [make_demand("a", 5000, 100)]
    p = plan(dem, [prof], gpus(8), "elastic", NO_RAISE)
    assert len(p.slices_of("a")) >= 2
    assert p.served_rate_rps("a") == pytest.approx(5000)
    assert sum(a.share for s in p.slices for a in s.assignments) == pytest.approx(1.0)
    assert check_plan(p, dem, [prof], NO_RAISE) == []


def test_devices_are_added_when_needed_and_unused_ones_dropped() -> None:
    prof = make_profile("a")
    small = plan([make_demand("a", 100, 100)], [prof], gpus(8), "elastic", NO_RAISE)
    big = plan([make_demand("a", 8000, 100)], [prof], gpus(8), "elastic", NO_RAISE)
    assert len(small.devices) == 1 < len(big.devices) <= 8


def test_too_few_devices_leaves_unserved_rate() -> None:
    prof = make_profile("a")
    p = plan([make_demand("a", 1e6, 100)], [prof], gpus(1), "elastic", NO_RAISE)
    assert p.unserved["a"] > 0
    assert p.served_rate_rps("a") + p.unserved["a"] == pytest.approx(1e6)


def test_small_residues_time_share_one_slice() -> None:
    # three tiny models on one GPU of at most two slices: two must share a duty cycle
    profs = [make_profile(m) for m in "abc"]
    dem = [make_demand(m, 20, 200) for m in "abc"]
    p = plan(dem, profs, gpus(1), "elastic", NO_RAISE)
    assert not p.unserved
    shared = [s for s in p.slices if len(s.assignments) > 1]
    assert shared and shared[0].duty_cycle_ms > 0
    assert check_plan(p, dem, profs, NO_RAISE) == []


def test_merge_replaces_partial_slices_of_one_model() -> None:
    from modelplex.planning.builder import Builder
    from modelplex.planning.context import build_context
    from modelplex.planning.elastic import merge_residues

    prof = make_profile("a")
    ctx = build_context([make_demand("a", 300, 100)], [prof], gpus(2), NO_RAISE)
    m = ctx.models[0]
    b = Builder(ctx)
    d0, d1 = b.open_device(), b.open_device()
    assert d0 is not None and d1 is not None
    assert b.place(d0, 20, m, 150) == 150 and b.place(d1, 20, m, 150) == 150
    merge_residues(b, m)
    slices = [s for states in b.slices.values() for s in states]
    assert len(slices) == 1 and slices[0].entries[0].rate_rps == pytest.approx(300)


def test_temporal_uses_whole_devices_and_exclusive_one_model_each() -> None:
    profs = [make_profile(m) for m in "abc"]
    dem = [make_demand(m, 200, 100) for m in "abc"]
    t = plan(dem, profs, gpus(4), "temporal", NO_RAISE)
    e = plan(dem, profs, gpus(4), "exclusive", NO_RAISE)
    assert all(s.slice.size == 100 for s in t.slices)
    assert len(t.devices) == 1  # all three fit one duty cycle
    assert len(e.devices) == 3 and all(len(s.assignments) == 1 for s in e.slices)
    for p in (t, e):
        assert check_plan(p, dem, profs, NO_RAISE) == []


def test_optimal_never_uses_more_devices_than_the_spatial_heuristics() -> None:
    profs = gpu_profiles(["resnet50", "vgg16", "mobilenetv2"])
    dem = [make_demand(n, 3000, slo) for n, slo in (("resnet50", 108), ("vgg16", 142), ("mobilenetv2", 64))]
    opt = plan(dem, profs, gpus(6), "optimal")
    exc = plan(dem, profs, gpus(6), "exclusive")
    assert not opt.unserved and len(opt.devices) <= len(exc.devices)
    assert check_plan(opt, dem, profs) == []


def test_mig_and_cpu_menus() -> None:
    mig = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MIG, 7) for i in range(2)]
    profs = gpu_profiles(["resnet50"])
    p = plan([make_demand("resnet50", 2000, 108)], profs, mig, "elastic")
    assert all(s.slice.size in (1, 2, 3, 4, 7) for s in p.slices)
    assert check_plan(p, [make_demand("resnet50", 2000, 108)], profs) == []
    cpu = [DeviceSpec("cpu0", DeviceKind.CPU, 8)]
    cprof = make_profile("a", sizes=(1, 2, 4, 8), kind=DeviceKind.CPU, whole=8, base_ms=5)
    p = plan([make_demand("a", 50, 200)], [cprof], cpu, "elastic")
    assert sum(s.slice.size for s in p.slices) <= 8
    assert all(s.slice.cpus for s in p.slices)
    assert not layout_ok(mig[0], [7, 1]) and not layout_ok(mig[0], [4, 4]) and layout_ok(mig[0], [4, 2, 1])


def test_interference_rejects_a_neighbour_that_breaks_an_slo() -> None:
    hot = {"l2": 1.0, "dram": 1.0}
    profs = [make_profile("a", features=hot), make_profile("b", features=hot)]
    dem = [make_demand("a", 300, 30), make_demand("b", 300, 30)]
    strong = PlannerConfig(rate_quantile=0.0, interference=LinearInterference((0.5, 2.0, 0.5, 2.0, 1.0)))
    with_model = plan(dem, profs, gpus(4), "elastic", strong)
    without = plan(dem, profs, gpus(4), "elastic", NO_RAISE)
    assert len(without.devices) == 1
    assert len(with_model.devices) == 2  # too slow side by side: kept apart
    assert check_plan(with_model, dem, profs, strong) == []


def test_interference_slows_predicted_latency() -> None:
    feats = {"l2": 0.3, "dram": 0.3}
    profs = [make_profile("a", features=feats), make_profile("b", features=feats)]
    dem = [make_demand("a", 300, 100), make_demand("b", 300, 100)]
    mild = PlannerConfig(rate_quantile=0.0, interference=LinearInterference((0.113, 0.716, 0.355, 0.088, 0.895)))
    p = plan(dem, profs, gpus(4), "elastic", mild)
    assert len(p.devices) == 1
    base = plan(dem, profs, gpus(4), "elastic", NO_RAISE)
    lat = {a.model: a.latency_ms / a.batch for s in p.slices for a in s.assignments}
    lat0 = {a.model: a.latency_ms / a.batch for s in base.slices for a in s.assignments}
    assert any(lat[m] > lat0[m] for m in lat)


@pytest.mark.parametrize(
    "demand, message",
    [
        (make_demand("nope", 10, 100), "model nope: unknown model"),
        (make_demand("a", -1, 100), "model a: rate_rps must be"),
        (make_demand("a", 10, 1), "model a: SLO 1 ms is below its fastest possible latency"),
        (make_demand("a", 10, 4), "model a: SLO 4 ms leaves no time to queue"),
        (make_demand("a", float("nan"), 100), "model a: rate_rps must be"),
        (make_demand("a", 10, 0), "model a: slo_ms must be"),
    ],
)
@pytest.mark.parametrize("policy", ["elastic", "temporal", "exclusive", "optimal"])
def test_bad_demand_names_the_model(demand: object, message: str, policy: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        plan([demand], [make_profile("a")], gpus(1), policy)  # type: ignore[list-item]


def test_unknown_policy() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown policy"):
        plan([make_demand("a", 1, 100)], [make_profile("a")], gpus(1), "magic")
