"""What a plan costs to run: device-hours per hour, cost per hour and per million requests, and
the same for the exclusive baseline (each model on whole devices of its own). Pure: no I/O.

Prices -- `KEY=PRICE` pairs (`gpu=2.50/h,cpu-core=0.04/h`) or a mapping of the same keys read
from a YAML/JSON file. A price is a number >= 0 per hour: `2.5`, `2.5/h` or `2.5/hour`.

    gpu        one whole GPU for an hour (any kind: MPS-shared or MIG-cut)
    gpu-mps    a whole GPU shared with MPS (overrides `gpu` for those devices)
    gpu-mig    a whole GPU cut into MIG instances (overrides `gpu` for those devices)
    cpu-core   one host core for an hour (`cpu`, the device kind's name, is the same price)

A device is paid for whole when any slice of the plan is on it (a GPU is rented whole; a CPU
core is used when a slice runs on it). The *sliced* figures count only the slices' share: a MIG
3g instance is 3/7 of its GPU's price, an MPS 40% share 0.4 of it; for CPUs the cores in slices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import Profiles
from modelplex.planning.exclusive import plan_exclusive

GPU, CPU_CORE = "gpu", "cpu-core"
PRICE_KEYS = (GPU, DeviceKind.GPU_MPS.value, DeviceKind.GPU_MIG.value, CPU_CORE, DeviceKind.CPU.value)
_PRICE = re.compile(r"^\$?\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(/\s*[A-Za-z]*)?$")
_UNITS = ("/h", "/hour")
_EXCLUSIVE_MAX_DEVICES = 4096  # the exclusive baseline's pool grows up to this many devices


@dataclass(frozen=True)
class Prices:
    """Price per hour by key of PRICE_KEYS (`cpu` already folded into `cpu-core`)."""

    per_hour: Mapping[str, float]

    def unit_price(self, kind: DeviceKind) -> float:
        """Per whole GPU-hour for GPU kinds, per core-hour for CPUs; names the missing key."""
        if kind is DeviceKind.CPU:
            if CPU_CORE not in self.per_hour:
                raise InvalidArgumentError("prices: the plan uses CPU cores; give a cpu-core= price")
            return self.per_hour[CPU_CORE]
        for key in (kind.value, GPU):
            if key in self.per_hour:
                return self.per_hour[key]
        raise InvalidArgumentError(f"prices: the plan uses {kind.value} devices; give a gpu= or {kind.value}= price")


def parse_price(key: str, value: object) -> float:
    """A price per hour from 2.5, "2.5", "2.5/h" or "2.5/hour"; names the key and value when bad."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidArgumentError(f"prices: {key}: expected a number per hour like 2.50/h, got {value!r}")
    if isinstance(value, str):
        match = _PRICE.match(value.strip())
        if not match:
            raise InvalidArgumentError(f"prices: {key}={value}: expected a number per hour like 2.50/h")
        unit = (match.group(2) or "/h").replace(" ", "").lower()
        if unit not in _UNITS:
            raise InvalidArgumentError(f"prices: {key}={value}: bad unit {unit!r}; use /h or /hour (or none: per hour)")
        price = float(match.group(1))
    else:
        price = float(value)
    if not math.isfinite(price):
        raise InvalidArgumentError(f"prices: {key}={value}: not a finite number")
    if price < 0:
        raise InvalidArgumentError(f"prices: {key}={value}: a price must be >= 0")
    return price


def prices_from_data(data: object) -> Prices:
    """Prices from a mapping (a parsed YAML/JSON file) of PRICE_KEYS to prices."""
    if not isinstance(data, Mapping) or not data:
        raise InvalidArgumentError(f"prices: expected a mapping like {{gpu: 2.50/h, cpu-core: 0.04/h}}, got {data!r}")
    out: dict[str, float] = {}
    for raw_key, value in data.items():
        key = str(raw_key).strip().lower()
        if key not in PRICE_KEYS:
            raise InvalidArgumentError(f"prices: unknown key {str(raw_key)!r}; known: {', '.join(PRICE_KEYS)}")
        folded = CPU_CORE if key == DeviceKind.CPU.value else key
        if folded in out:
            raise InvalidArgumentError(f"prices: {key}: given twice (cpu and cpu-core are the same price)")
        out[folded] = parse_price(key, value)
    return Prices(out)


def parse_prices(text: str) -> Prices:
    """Prices from `gpu=2.50/h,cpu-core=0.04/h`."""
    pairs: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InvalidArgumentError(f"prices: cannot read {item!r}; expected KEY=PRICE like gpu=2.50/h")
        if key.strip().lower() in pairs:
            raise InvalidArgumentError(f"prices: {key.strip()}: given twice")
        pairs[key.strip().lower()] = value
    return prices_from_data(pairs)


@dataclass(frozen=True)
class Usage:
    """What a plan holds of one kind of device, in the kind's priced unit (GPUs, or CPU cores)."""

    kind: DeviceKind
    devices: int  # devices with at least one slice
    used: float  # priced units with a slice on them: whole GPUs, or cores (device-hours per hour)
    sliced: float  # units the slices cover: GPU-equivalents (slice size / capacity), or cores in slices
    capacity: float  # units of the devices used: GPUs, or their hosts' cores
    unit_price: float  # per unit-hour

    @property
    def unit(self) -> str:
        return CPU_CORE if self.kind is DeviceKind.CPU else GPU

    @property
    def cost_per_hour(self) -> float:
        return self.used * self.unit_price


@dataclass(frozen=True)
class PlanCost:
    usage: tuple[Usage, ...]  # one per device kind the plan uses
    rate_rps: float  # requests per second the plan serves

    @property
    def cost_per_hour(self) -> float:
        return sum(u.cost_per_hour for u in self.usage)

    @property
    def sliced_cost_per_hour(self) -> float:
        return sum(u.sliced * u.unit_price for u in self.usage)

    @property
    def per_million(self) -> float | None:
        """Cost of a million requests at the planned rate (None when it serves nothing)."""
        return self.cost_per_hour / (self.rate_rps * 3600.0) * 1e6 if self.rate_rps > 0 else None

    def to_json(self) -> dict[str, object]:
        return {
            "usage": [{"kind": u.kind.value, "unit": u.unit, "devices": u.devices, "used": u.used,
                       "sliced": round(u.sliced, 6), "capacity": u.capacity, "unit_price_per_hour": u.unit_price,
                       "cost_per_hour": round(u.cost_per_hour, 6)} for u in self.usage],
            "rate_rps": round(self.rate_rps, 6),
            "cost_per_hour": round(self.cost_per_hour, 6),
            "sliced_cost_per_hour": round(self.sliced_cost_per_hour, 6),
            "cost_per_million_requests": None if self.per_million is None else round(self.per_million, 6),
        }


def _usage(kind: DeviceKind, devices: Sequence[DeviceSpec], plan: Plan, price: float) -> Usage:
    by_id = {d.device_id: d for d in devices}
    on: dict[str, list[tuple[int, tuple[int, ...]]]] = {}
    for s in plan.slices:
        if s.slice.device_id in by_id:
            on.setdefault(s.slice.device_id, []).append((s.slice.size, s.slice.cpus))
    if kind is not DeviceKind.CPU:
        sliced = sum(min(1.0, sum(size for size, _ in sl) / by_id[d].capacity) for d, sl in on.items())
        return Usage(kind, len(on), float(len(on)), sliced, float(len(on)), price)
    used = 0
    for d, sl in on.items():
        pinned = {c for _, cpus in sl for c in cpus}
        loose = sum(size for size, cpus in sl if not cpus)  # slices planned without exact cores
        used += min(by_id[d].capacity, len(pinned) + loose)
    sliced = float(sum(min(by_id[d].capacity, sum(size for size, _ in sl)) for d, sl in on.items()))
    return Usage(kind, len(on), float(used), sliced, float(sum(by_id[d].capacity for d in on)), price)


def served_rate_rps(plan: Plan, demand_rps: Mapping[str, float]) -> float:
    """Requests per second the plan serves: each model's demand rate (the plan's own assignment
    rates where none is given) times the fraction of its planned rate the plan places."""
    total = 0.0
    for m in sorted({a.model for s in plan.slices for a in s.assignments} | set(plan.unserved) | set(demand_rps)):
        served = plan.served_rate_rps(m)
        planned = served + plan.unserved.get(m, 0.0)
        fraction = served / planned if planned > 0 else 0.0
        total += demand_rps[m] * fraction if m in demand_rps else served
    return total


def plan_cost(plan: Plan, prices: Prices, demand_rps: Mapping[str, float]) -> PlanCost:
    """Device use and cost of `plan` at `demand_rps` (model -> mean rate); a missing price is an error."""
    kinds = sorted({d.kind for d in plan.devices}, key=lambda k: k.value)
    usage = tuple(_usage(k, [d for d in plan.devices if d.kind is k], plan, prices.unit_price(k)) for k in kinds)
    return PlanCost(tuple(u for u in usage if u.devices), served_rate_rps(plan, demand_rps))


def exclusive_baseline(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig
) -> Plan:
    """The exclusive plan of the same demand, its pool grown past `devices` (same kind, doubling,
    bounded) while that serves more: the baseline should not look cheap for lack of devices."""
    pool = list(devices)
    plan = plan_exclusive(demands, profiles, pool, config)
    while plan.unserved and len(pool) < _EXCLUSIVE_MAX_DEVICES:
        prefix = "cpu" if pool[-1].kind is DeviceKind.CPU else "gpu"
        taken = {d.device_id for d in pool}
        extra = [f"{prefix}x{i}" for i in range(len(pool) * 2) if f"{prefix}x{i}" not in taken][: len(pool)]
        grown = pool + [replace(pool[-1], device_id=name) for name in extra]
        bigger = plan_exclusive(demands, profiles, grown, config)
        if sum(bigger.unserved.values()) >= sum(plan.unserved.values()) - 1e-9:
            break  # more devices do not help (an SLO no device meets)
        pool, plan = grown, bigger
    return plan


@dataclass(frozen=True)
class CostComparison:
    plan: PlanCost
    exclusive: PlanCost | None  # None: not available (see `note`)
    note: str = ""  # why the exclusive comparison is missing

    @property
    def ratio(self) -> float | None:
        """Exclusive cost per hour over the plan's (None when either is missing or zero)."""
        if self.exclusive is None or self.plan.cost_per_hour <= 0:
            return None
        return self.exclusive.cost_per_hour / self.plan.cost_per_hour

    def to_json(self) -> dict[str, object]:
        ratio = self.ratio
        return {"plan": self.plan.to_json(), "exclusive": None if self.exclusive is None else self.exclusive.to_json(),
                "exclusive_over_plan": None if ratio is None else round(ratio, 4), "note": self.note}


def _usage_text(u: Usage) -> str:
    if u.kind is DeviceKind.CPU:
        held = f"{u.used:g} core(s) of {u.capacity:g} on {u.devices} host(s)"
    else:
        held = f"{u.devices} GPU(s) ({u.kind.value}; slices cover {u.sliced:.2f} GPU, {u.sliced / u.used:.0%})"
    return f"{held} x {u.unit_price:g}/h = {u.cost_per_hour:.4g}/h"


def _cost_text(c: PlanCost) -> str:
    held = "; ".join(_usage_text(u) for u in c.usage) or "no devices"
    per_m = "-" if c.per_million is None else f"{c.per_million:.4g}"
    return f"{held}; {c.rate_rps:,.1f} req/s -> {per_m} per million requests"


def cost_lines(comparison: CostComparison) -> list[str]:
    """A few readable lines: the plan's cost, the exclusive baseline's, and their ratio."""
    c = comparison.plan
    lines = [f"cost: {_cost_text(c)}"]
    if c.sliced_cost_per_hour < c.cost_per_hour:
        lines.append(f"  sliced only (paying for the slices' share of each device): {c.sliced_cost_per_hour:.4g}/h")
    if comparison.exclusive is None:
        lines.append(f"exclusive: not available ({comparison.note})")
        return lines
    lines.append(f"exclusive: {_cost_text(comparison.exclusive)}")
    ratio = comparison.ratio
    if ratio is not None:
        lines.append(f"exclusive placement costs {ratio:.2f}x the plan per hour")
    return lines
