"""Prices and the cost of a plan: parsing, device-hours, cost per hour and per million requests."""

from __future__ import annotations

import pytest

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.planning import PlannerConfig
from modelplex.planning.cost import (
    CostComparison, Prices, cost_lines, exclusive_baseline, parse_prices, plan_cost, prices_from_data, served_rate_rps,
)
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import gpu_profiles


@pytest.mark.parametrize(
    "text, expected",
    [
        ("gpu=2.50/h,cpu-core=0.04/h", {"gpu": 2.5, "cpu-core": 0.04}),
        ("gpu=2.5/hour", {"gpu": 2.5}),
        ("gpu=3", {"gpu": 3.0}),
        (" GPU = $1.5 / h , cpu=0.1", {"gpu": 1.5, "cpu-core": 0.1}),
        ("gpu-mig=7,gpu-mps=4,gpu=1", {"gpu-mig": 7.0, "gpu-mps": 4.0, "gpu": 1.0}),
        ("cpu-core=0", {"cpu-core": 0.0}),
        ("gpu=1e1/H", {"gpu": 10.0}),
    ],
)
def test_parse_prices(text: str, expected: dict[str, float]) -> None:
    assert dict(parse_prices(text).per_hour) == expected


@pytest.mark.parametrize(
    "text, needle",
    [
        ("tpu=3/h", "unknown key 'tpu'"),
        ("gpu=-1/h", "gpu=-1/h: a price must be >= 0"),
        ("gpu=2/day", "bad unit '/day'"),
        ("gpu=2/min", "bad unit '/min'"),
        ("gpu=cheap", "gpu=cheap: expected a number per hour"),
        ("gpu=", "gpu=: expected a number per hour"),
        ("gpu=nan", "gpu=nan: expected a number"),
        ("gpu2.5", "cannot read 'gpu2.5'"),
        ("gpu=1,gpu=2", "gpu: given twice"),
        ("cpu=1,cpu-core=2", "given twice"),
        ("=3", "cannot read '=3'"),
    ],
)
def test_bad_prices_name_the_key_and_value(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=None) as err:
        parse_prices(text)
    assert needle in err.value.message


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"gpu": 2.5, "cpu-core": "0.04/h"}, {"gpu": 2.5, "cpu-core": 0.04}),
        ({"gpu-mig": "10/hour"}, {"gpu-mig": 10.0}),
    ],
)
def test_prices_from_a_mapping(data: dict[str, object], expected: dict[str, float]) -> None:
    assert dict(prices_from_data(data).per_hour) == expected


@pytest.mark.parametrize(
    "data, needle",
    [
        ([1, 2], "expected a mapping"),
        ({}, "expected a mapping"),
        ({"gpu": True}, "gpu: expected a number per hour"),
        ({"gpu": -0.5}, "a price must be >= 0"),
        ({"gpu": float("inf")}, "not a finite number"),
        ({"ram": 1}, "unknown key 'ram'"),
    ],
)
def test_bad_price_mappings(data: object, needle: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        prices_from_data(data)
    assert needle in err.value.message


def _slice(sid: str, dev: str, size: int, rates: dict[str, float], cpus: tuple[int, ...] = ()) -> SlicePlan:
    total = sum(rates.values())
    assignments = tuple(ModelAssignment(m, 8, r, 1.0 if total == 0 else r / total, 5.0) for m, r in rates.items())
    return SlicePlan(sid, SliceSpec(dev, size, cpus), assignments, 0.0, 0.5)


MIG = tuple(DeviceSpec(f"gpu{i}", DeviceKind.GPU_MIG, 7) for i in range(3))
MPS = tuple(DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(2))
HOSTS = (DeviceSpec("cpu0", DeviceKind.CPU, 16), DeviceSpec("cpu1", DeviceKind.CPU, 8))
PRICES = Prices({"gpu": 2.0, "gpu-mig": 3.5, "cpu-core": 0.05})


@pytest.mark.parametrize(
    "plan, used, sliced, cost_h, rate, per_m",
    [
        # MIG: gpu0 holds 3g + 1g (4/7), gpu1 holds 7g, gpu2 is idle; priced by gpu-mig
        (Plan("t", MIG, (_slice("a", "gpu0", 3, {"x": 100}), _slice("b", "gpu0", 1, {"y": 50}),
                         _slice("c", "gpu1", 7, {"x": 250}))),
         2.0, 4 / 7 + 1, 7.0, 400.0, 7.0 / (400 * 3600) * 1e6),
        # MPS: 40% + 30% on gpu0; priced by gpu
        (Plan("t", MPS, (_slice("a", "gpu0", 40, {"x": 10}), _slice("b", "gpu0", 30, {"y": 10}))),
         1.0, 0.7, 2.0, 20.0, 2.0 / (20 * 3600) * 1e6),
        # CPU: cores 0-3 and 6 on cpu0, a loose 2-core slice on cpu1; cpu0's cores counted once
        (Plan("t", HOSTS, (_slice("a", "cpu0", 4, {"x": 30}, (0, 1, 2, 3)), _slice("b", "cpu0", 1, {"y": 5}, (6,)),
                           _slice("c", "cpu1", 2, {"y": 5}))),
         7.0, 7.0, 0.35, 40.0, 0.35 / (40 * 3600) * 1e6),
        # nothing served: no devices held, no cost per request
        (Plan("t", MPS, ()), 0.0, 0.0, 0.0, 0.0, None),
    ],
)
def test_plan_cost_arithmetic(plan: Plan, used: float, sliced: float, cost_h: float, rate: float, per_m: float | None) -> None:
    cost = plan_cost(plan, PRICES, {})
    assert sum(u.used for u in cost.usage) == pytest.approx(used)
    assert sum(u.sliced for u in cost.usage) == pytest.approx(sliced)
    assert cost.cost_per_hour == pytest.approx(cost_h)
    assert cost.rate_rps == pytest.approx(rate)
    assert cost.per_million == (None if per_m is None else pytest.approx(per_m))
    assert cost.sliced_cost_per_hour <= cost.cost_per_hour + 1e-12


def test_mig_slices_cost_their_share_of_a_gpu_when_sliced() -> None:
    plan = Plan("t", MIG, (_slice("a", "gpu0", 3, {"x": 100}), _slice("b", "gpu1", 2, {"y": 100})))
    cost = plan_cost(plan, PRICES, {})
    assert cost.cost_per_hour == pytest.approx(2 * 3.5)
    assert cost.sliced_cost_per_hour == pytest.approx(5 / 7 * 3.5)
    assert any("sliced only" in line for line in cost_lines(CostComparison(cost, None, "no profiles")))


def test_rates_are_the_demand_times_the_served_fraction() -> None:
    # planned for raised rates (120 and 60) of which y's plan leaves a third unserved
    plan = Plan("t", MPS, (_slice("a", "gpu0", 50, {"x": 120}), _slice("b", "gpu0", 50, {"y": 40})), {"y": 20.0})
    assert served_rate_rps(plan, {"x": 100.0, "y": 30.0}) == pytest.approx(100 + 30 * 2 / 3)
    assert served_rate_rps(plan, {}) == pytest.approx(160.0)  # no demand given: the plan's own rates


@pytest.mark.parametrize(
    "prices, kind, needle",
    [
        (Prices({"gpu-mig": 1.0}), DeviceKind.GPU_MPS, "give a gpu= or gpu-mps= price"),
        (Prices({"gpu": 1.0}), DeviceKind.CPU, "give a cpu-core= price"),
    ],
)
def test_a_missing_price_is_named(prices: Prices, kind: DeviceKind, needle: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        prices.unit_price(kind)
    assert needle in err.value.message


def test_exclusive_baseline_is_not_cut_short_by_the_pool() -> None:
    profiles = gpu_profiles(["resnet50", "mobilenetv2"])
    demands = [Demand("resnet50", 2000, 108), Demand("mobilenetv2", 3000, 64)]
    small = parse_devices("gpu:1")
    plan = exclusive_baseline(demands, profiles, small, PlannerConfig())
    assert not plan.unserved and len({s.slice.device_id for s in plan.slices}) >= 2
    rates = {d.model: d.rate_rps for d in demands}
    comparison = CostComparison(plan_cost(plan, PRICES, rates), plan_cost(plan, PRICES, rates))
    assert comparison.ratio == pytest.approx(1.0)
    lines = cost_lines(comparison)
    assert lines[0].startswith("cost: ") and lines[1].startswith("exclusive: ") and "1.00x" in lines[-1]
    assert comparison.to_json()["exclusive_over_plan"] == 1.0
