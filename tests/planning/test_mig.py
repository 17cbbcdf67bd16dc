"""Exact MIG placement: the layouts an A100 / H100 accepts, and plans that only hold those."""

from __future__ import annotations

import pytest
from planning_builders import make_demand

from modelplex.core import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning import check_plan, plan
from modelplex.planning.menus import layout_ok
from modelplex.planning.mig import GPU_MODELS, check_mig_starts, gpu_model, mig_placement
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import gpu_profiles

H100 = DeviceSpec("gpu0", DeviceKind.GPU_MIG, 7, gpu_model="h100-80gb")
A100 = DeviceSpec("gpu0", DeviceKind.GPU_MIG, 7, gpu_model="a100-80gb")


@pytest.mark.parametrize(
    "sizes, ok",
    [
        ((7,), True),
        ((4, 3), True),
        ((4, 2, 1), True),
        ((4, 1, 1, 1), True),
        ((3, 3), True),
        ((3, 3, 1), False),  # two 3g take all eight memory slices: the old rule admitted it
        ((3, 2, 1), True),
        ((3, 2, 2, 1), False),  # 4 + 2 + 2 + 1 memory slices > 8
        ((2, 3, 2, 1), False),  # the same, any order
        ((3, 1, 1, 1), True),
        ((2, 2, 3), True),
        ((2, 2, 2, 1), True),
        ((2, 2, 1, 1, 1), True),
        ((1,) * 7, True),
        ((1,) * 8, False),
        ((4, 4), False),
        ((7, 1), False),
        ((4, 3, 1), False),
        ((5,), False),  # no 5g profile
        ((), True),
    ],
)
@pytest.mark.parametrize("device", [H100, A100], ids=["h100", "a100"])
def test_layouts_follow_the_placement_table(sizes: tuple[int, ...], ok: bool, device: DeviceSpec) -> None:
    assert layout_ok(device, sizes) is ok
    starts = mig_placement(gpu_model(device.gpu_model), sizes)
    assert (starts is not None) is ok
    if starts is not None:
        assert check_mig_starts(gpu_model(device.gpu_model), list(zip(sizes, starts))) is None


@pytest.mark.parametrize(
    "placed, needle",
    [
        ([(3, 0), (3, 4)], None),
        ([(3, 2)], "cannot start at memory slice 2"),
        ([(4, 0), (2, 2)], "overlaps"),
        ([(1, 7)], "cannot start at memory slice 7"),
        ([(6, 0)], "no 6g MIG profile"),
    ],
)
def test_explicit_starts_are_checked(placed: list[tuple[int, int]], needle: str | None) -> None:
    why = check_mig_starts(gpu_model("a100-80gb"), placed)
    assert (why is None) if needle is None else (why is not None and needle in why)


def test_gpu_models_have_memory_and_a_full_table() -> None:
    for model in GPU_MODELS.values():
        assert model.memory_mb > 0
        for prof in model.mig:
            assert 0 < prof.memory_mb <= model.memory_mb
    assert gpu_model("").key == "h100-80gb"
    with pytest.raises(InvalidArgumentError, match="unknown GPU model"):
        gpu_model("v100")


def test_planned_mig_layouts_are_placeable_with_explicit_starts() -> None:
    profs = gpu_profiles(["resnet50", "mobilenetv2", "vgg16"])
    dem = [make_demand("resnet50", 4000, 108), make_demand("mobilenetv2", 3000, 64), make_demand("vgg16", 1500, 142)]
    devices = parse_devices("mig:8@a100-80gb")
    for policy in ("elastic", "temporal", "exclusive", "optimal"):
        p = plan(dem, profs, devices, policy)
        assert check_plan(p, dem, profs) == [], policy
        for dev in p.devices:
            mine = [s.slice for s in p.slices if s.slice.device_id == dev.device_id]
            assert all(s.mig_start >= 0 for s in mine)
            assert check_mig_starts(gpu_model(dev.gpu_model), [(s.size, s.mig_start) for s in mine]) is None


def test_validator_rejects_a_refused_layout_and_a_bad_start() -> None:
    profs = gpu_profiles(["resnet50"])
    dem = [make_demand("resnet50", 2000, 108)]
    good = plan(dem, profs, parse_devices("mig:2"), "elastic")
    data = good.to_json()
    first = data["slices"][0]  # type: ignore[index]
    data["slices"] = [dict(first, slice_id=f"x{i}", size=size, mig_start=-1) for i, size in enumerate((3, 3, 1))]
    problems = check_plan(Plan.from_json(data), dem, profs)
    assert any("do not fit" in line for line in problems)
    data["slices"] = [dict(first, slice_id="x", size=3, mig_start=2)]
    problems = check_plan(Plan.from_json(data), dem, profs)
    assert any("MIG placement refused" in line for line in problems)


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("mig:1@v100", "unknown GPU model"),
        ("mig:1@rtx2080ti", "has no MIG"),
        ("cpu:4@a100-80gb", "has no GPU model"),
    ],
)
def test_device_spec_errors(spec: str, needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle):
        parse_devices(spec)


def test_device_spec_names_the_gpu_model() -> None:
    (dev,) = parse_devices("mig:1@a100-40gb")
    assert dev.gpu_model == "a100-40gb" and dev.memory_mb == 40960 and "A100" in dev.name
    (dev,) = parse_devices("gpu:1")
    assert dev.gpu_model == "h100-80gb" and dev.kind is DeviceKind.GPU_MPS
