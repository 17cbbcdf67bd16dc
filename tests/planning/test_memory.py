"""Memory in every fit: weights, activations at the planned batch and a context per process must
fit the slice (a MIG instance's own memory) and the device."""

from __future__ import annotations

from dataclasses import replace

import pytest
from planning_builders import make_demand, make_profile

from modelplex.core import DeviceKind, DeviceSpec, Profile
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning import PlannerConfig, check_plan, plan
from modelplex.planning.context import build_context, slice_cap_mb
from modelplex.planning.specs import parse_devices

NO_RAISE = PlannerConfig(rate_quantile=0.0)


def mig_profile(name: str, memory_mb: float, act_mb: float) -> Profile:
    prof = make_profile(name, base_ms=1.0, per_item_ms=0.2, sizes=(1, 2, 3, 4, 7), kind=DeviceKind.GPU_MIG, whole=7)
    return replace(prof, memory_mb=memory_mb, activation_mb_per_item=act_mb)


@pytest.mark.parametrize(
    "memory_mb, act_mb, size, max_batch",
    [
        (8000.0, 100.0, 1, 7),  # 1g.10gb holds 9984 MB: (9984 - 1230 - 8000) / 100 = 7.5
        (8000.0, 100.0, 2, 32),  # 2g.20gb holds 20091 MB: every batch fits
        (2000.0, 0.0, 1, 32),  # no activations: only weights + context count
        (9000.0, 0.0, 1, 0),  # 9000 + 1230 > 9984: not on a 1g at all
    ],
)
def test_batch_on_a_mig_instance_is_capped_by_its_memory(memory_mb: float, act_mb: float, size: int, max_batch: int) -> None:
    prof = mig_profile("m", memory_mb, act_mb)
    dev = parse_devices("mig:1@h100-80gb")[0]
    cfg = PlannerConfig(rate_quantile=0.0, max_slices_per_device=1)
    ctx = build_context([make_demand("m", 100, 1000)], [prof], [dev], cfg)
    assert ctx.models[0].batch_cap(slice_cap_mb(dev, size)) == max_batch


def test_plans_on_small_instances_respect_memory() -> None:
    prof = mig_profile("m", 8000.0, 100.0)
    dem = [make_demand("m", 3000, 200)]
    p = plan(dem, [prof], parse_devices("mig:4"), "elastic", NO_RAISE)
    assert not p.unserved and check_plan(p, dem, [prof], NO_RAISE) == []
    for s in p.slices:
        assert 0 < s.memory_mb
        if s.slice.size == 1:
            assert s.assignments[0].batch <= 7


def test_time_sharing_one_process_counts_every_model() -> None:
    profs = [replace(make_profile(n, base_ms=1.0, per_item_ms=0.05), memory_mb=30000.0) for n in "abc"]
    dem = [make_demand(n, 20, 500) for n in "abc"]
    unlimited = plan(dem, profs, [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(3)], "temporal", NO_RAISE)
    assert len(unlimited.devices) == 1  # memory not stated: all three share one duty cycle
    limited = plan(dem, profs, parse_devices("gpu:3@h100-80gb"), "temporal", NO_RAISE)
    assert len(limited.devices) == 2  # 1230 + 3 x 30000 MB > 81920 MB: two devices
    assert check_plan(limited, dem, profs, NO_RAISE) == []


def test_model_larger_than_the_device_is_named() -> None:
    prof = replace(make_profile("huge"), memory_mb=90000.0)
    with pytest.raises(InvalidArgumentError, match="model huge: needs 91230 MB at batch 1"):
        plan([make_demand("huge", 10, 100)], [prof], parse_devices("gpu:1@h100-80gb"), "elastic")


def test_validator_recomputes_memory_from_the_profiles() -> None:
    prof = mig_profile("m", 8000.0, 100.0)
    dem = [make_demand("m", 50, 200)]
    p = plan(dem, [prof], parse_devices("mig:1"), "elastic", PlannerConfig(rate_quantile=0.0, max_slices_per_device=1))
    data = p.to_json()
    data["slices"] = [dict(data["slices"][0], size=1, mig_start=0, memory_mb=1.0)]  # type: ignore[index]
    problems = check_plan(Plan.from_json(data), dem, [prof], NO_RAISE)
    assert any("the slice holds 9984 MB" in line for line in problems), problems


def test_context_mb_is_configurable() -> None:
    prof = mig_profile("m", 8000.0, 100.0)
    dev = parse_devices("mig:1")[0]
    ctx = build_context([make_demand("m", 1, 1000)], [prof], [dev], PlannerConfig(context_mb=0.0))
    assert ctx.models[0].batch_cap(slice_cap_mb(dev, 1)) == 19
