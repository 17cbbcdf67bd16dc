"""Shared types: profile interpolation rules, JSON round trips, the BYTES codec."""

from __future__ import annotations

import numpy as np
import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.core.profile import Profile, ProfilePoint
from modelplex.core.tensors import DataType, deserialize_bytes_tensor, serialize_bytes_tensor


def make_profile() -> Profile:
    # 1 core: 10 ms at batch 2, 16 ms at 4, 30 ms at 8 (a dip at 4 is smoothed away below)
    pts = [(1, 2, 10.0), (1, 4, 16.0), (1, 8, 30.0), (2, 2, 6.0), (2, 4, 9.0), (2, 8, 17.0)]
    return Profile("m", "cpu", "test", tuple(ProfilePoint(s, b, ms, ms * 1.2) for s, b, ms in pts))


@pytest.mark.parametrize(
    ("size", "batch", "expected_ms"),
    [
        (1, 4, 16.0),  # measured
        (1, 6, 23.0),  # linear between 4 and 8
        (1, 16, 60.0),  # beyond the largest batch: proportional
        (1, 1, 7.0),  # below the smallest: along the first segment (10 - 3)...
        (2, 1, 4.5),  # ...and 6 - 1.5 on 2 cores
        (4, 4, 9.0),  # a bigger slice than measured: no speed-up assumed
        (0.5, 4, 32.0),  # a smaller slice than measured: in proportion
    ],
)
def test_latency_rules(size: float, batch: int, expected_ms: float) -> None:
    assert make_profile().latency_ms(size, batch) == pytest.approx(expected_ms)  # type: ignore[arg-type]


def test_latency_is_non_decreasing_in_batch_and_floored_below() -> None:
    p = Profile("m", "cpu", points=(ProfilePoint(1, 2, 10.0, 10.0), ProfilePoint(1, 4, 9.0, 9.0), ProfilePoint(1, 8, 40.0, 40.0)))
    values = [p.latency_ms(1, b) for b in range(1, 17)]
    assert values == sorted(values)
    assert p.latency_ms(1, 4) == 10.0  # the measured dip is lifted to the smaller batch's latency
    assert p.latency_ms(1, 1) >= 10.0 / 2  # never below proportional scaling


def test_between_slice_sizes_interpolates_in_inverse_size() -> None:
    p = make_profile()
    mid = p.latency_ms(1.5, 4)  # type: ignore[arg-type]
    assert 9.0 < mid < 16.0


def test_profile_json_round_trip() -> None:
    p = make_profile()
    q = Profile.from_json(p.to_json())
    assert q.points == p.points and q.model == p.model and q.latency_ms(1, 6) == p.latency_ms(1, 6)


def test_plan_json_round_trip() -> None:
    plan = Plan(
        "elastic",
        (DeviceSpec("cpu0", DeviceKind.CPU, 2, "host"),),
        (SlicePlan("cpu0/s0", SliceSpec("cpu0", 1, (0,)), (ModelAssignment("m", 4, 10.0, 1.0, 3.0),), 0.0, 0.5),),
        {"other": 2.0},
    )
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.served_rate_rps("m") == 10.0 and [s.slice_id for s in again.slices_of("m")] == ["cpu0/s0"]


def test_bytes_codec_round_trip_and_errors() -> None:
    arr = np.array([b"a", "é".encode(), b""], dtype=object)
    raw = serialize_bytes_tensor(arr)
    assert deserialize_bytes_tensor(raw, 3).tolist() == arr.tolist()
    with pytest.raises(InvalidArgumentError, match="truncated"):
        deserialize_bytes_tensor(raw[:-1] + b"\x05", None)
    with pytest.raises(InvalidArgumentError, match="elements"):
        deserialize_bytes_tensor(raw, 2)


@pytest.mark.parametrize("name", ["FP32", "INT64", "BOOL", "FP16", "UINT8"])
def test_datatype_numpy_round_trip(name: str) -> None:
    dt = DataType.parse(name)
    assert DataType.from_numpy(dt.numpy) is dt


def test_unknown_datatype() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown datatype"):
        DataType.parse("FP99")
