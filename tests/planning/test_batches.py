"""Batches as large as the profiles hold: a global limit and a per-model one (the variant's)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelplex.core import Demand
from modelplex.planning import PlannerConfig, check_plan, plan
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import gpu_profiles


@pytest.mark.parametrize(
    "max_batch, model_max, top",
    [
        (32, 0, 32),  # the gpu-let default
        (128, 0, 128),  # profiles to 128: planned to 128
        (128, 48, 48),  # the variant accepts at most 48
        (16, 48, 16),  # the planner's limit is lower
    ],
)
def test_largest_planned_batch(max_batch: int, model_max: int, top: int) -> None:
    profs = [replace(p, max_batch=model_max) for p in gpu_profiles(["resnet50"])]
    dem = [Demand("resnet50", 60000, 108)]
    cfg = PlannerConfig(max_batch=max_batch)
    p = plan(dem, profs, parse_devices("gpu:16"), "elastic", cfg)
    assert not p.unserved and check_plan(p, dem, profs, cfg) == []
    assert max(a.batch for s in p.slices for a in s.assignments) == top


def test_larger_batches_need_fewer_gpus_when_the_slo_allows() -> None:
    profs = gpu_profiles(["resnet50"])
    dem = [Demand("resnet50", 200000, 108)]
    small = plan(dem, profs, parse_devices("gpu:64"), "elastic", PlannerConfig(max_batch=32))
    large = plan(dem, profs, parse_devices("gpu:64"), "elastic", PlannerConfig(max_batch=128))
    assert len(large.devices) < len(small.devices)
