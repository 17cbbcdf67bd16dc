"""New shared fields: profile points per process count, memory per sample, a variant's max batch,
the GPU model of a device, a MIG instance's start, a slice's processes and memory -- each with a
default, and JSON written before they existed still read."""

from __future__ import annotations

import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.core.profile import Profile, ProfilePoint

POINTS = (
    ProfilePoint(3, 8, 10.0, 11.0, 800.0, 5, 1),
    ProfilePoint(3, 16, 18.0, 20.0, 888.0, 5, 1),
    ProfilePoint(3, 8, 14.0, 15.0, 1142.0, 5, 2),
    ProfilePoint(3, 16, 26.0, 28.0, 1230.0, 5, 2),
)


def make_profile() -> Profile:
    return Profile("m", "gpu-mig", "test", POINTS, 2000.0, 3.0, {"dram@8": 0.2}, activation_mb_per_item=12.5, max_batch=64)


@pytest.mark.parametrize(
    "processes, batch, expected_ms",
    [(1, 8, 10.0), (1, 12, 14.0), (2, 8, 14.0), (2, 12, 20.0), (2, 32, 52.0)],
)
def test_latency_is_looked_up_per_process_count(processes: int, batch: int, expected_ms: float) -> None:
    assert make_profile().latency_ms(3, batch, processes=processes) == pytest.approx(expected_ms)


def test_unmeasured_process_count_has_no_table() -> None:
    with pytest.raises(ValueError, match="no points with 3 process"):
        make_profile().latency_ms(3, 8, processes=3)
    assert make_profile().process_counts() == [1, 2]
    assert make_profile().memory_needed_mb(8) == pytest.approx(2100.0)


def test_profile_json_round_trip_and_old_json() -> None:
    prof = make_profile()
    assert Profile.from_json(prof.to_json()) == prof
    old = prof.to_json()
    for key in ("activation_mb_per_item", "max_batch"):
        old.pop(key)
    for pt in old["points"]:  # type: ignore[union-attr]
        pt.pop("processes")  # type: ignore[union-attr]
    read = Profile.from_json(old)
    assert read.activation_mb_per_item == 0.0 and read.max_batch == 0 and {p.processes for p in read.points} == {1}


def test_plan_json_keeps_the_new_fields() -> None:
    dev = DeviceSpec("gpu0", DeviceKind.GPU_MIG, 7, "NVIDIA A100 80GB (MIG)", 81920, "a100-80gb")
    sl = SlicePlan("gpu0/s0", SliceSpec("gpu0", 3, (), 4), (ModelAssignment("m", 16, 900.0, 1.0, 26.0),), 0.0, 0.8, processes=2, memory_mb=6930.0)
    p = Plan("min-devices", (dev,), (sl,))
    back = Plan.from_json(p.to_json())
    assert back == p
    assert back.slices[0].processes == 2 and back.slices[0].slice.mig_start == 4 and back.devices[0].gpu_model == "a100-80gb"


def test_defaults_keep_old_constructors_working() -> None:
    assert DeviceSpec("cpu0", DeviceKind.CPU, 2).gpu_model == ""
    assert SliceSpec("cpu0", 1, (0,)).mig_start == -1
    s = SlicePlan("x", SliceSpec("cpu0", 1, (0,)), (), 0.0, 0.0)
    assert s.processes == 1 and s.memory_mb == 0.0
    assert ProfilePoint(1, 1, 1.0, 1.0).processes == 1
