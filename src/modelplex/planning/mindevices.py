"""The fewest devices that serve the whole demand within SLO (`modelplex plan --minimize-devices`).

1. Candidates: every elastic multi-start pass and the temporal policy, each placed on the pool
   (devices open one at a time, as needed).
2. Repack (ParvaGPU's allocator idea), on the best few candidates: take the open device with
   the least work, remove its slices and place their traffic on the other open devices (best
   fit, free regions, time sharing into existing duty cycles); keep the result when everything
   found a place, else undo and try the next least loaded; stop after a few failures in a row.
   Then merge residues and grow slices as elastic does.
3. On small instances (`exact_max_models`) not yet at the bound, the CP-SAT spatial program
   (policy `optimal`), with the best heuristic count as its pool, may find fewer devices.
4. Lower bound: no plan can do with fewer than ceil(sum over models of rate x (slice units per
   request/s on that model's most efficient slice) / device capacity) devices. Under the
   planner's own latency model every configuration (saturated, residue, duty cycle, k processes)
   serves at most the SLO/2-rule throughput of its slice share, and interference only slows, so
   the bound holds for every plan the policies can make. It is raised to the devices that give
   every model a slice to run on (`seat_lower_bound`). `gap` = devices - bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning.builder import Builder
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import ModelInfo, PlanningContext, Profiles, build_context, slice_cap_mb
from modelplex.planning.elastic import Variant, finish_plan, place_rate, run_variant, variants_for
from modelplex.planning.optimal import solve_optimal
from modelplex.planning.rules import EPS
from modelplex.planning.temporal import temporal_builder

REPACK_VARIANT = Variant(share_first=True)  # how a removed device's traffic is placed again
REPACK_TRIES = 4  # least-loaded devices tried in a row without success before repacking stops
REPACK_BEST = 3  # candidates repacked: the best few by devices used (repacking is the costly part)


@dataclass(frozen=True)
class MinDevicesResult:
    """The plan with the fewest devices found, and how far it can be from the optimum."""

    plan: Plan  # the chosen plan (policy "min-devices")
    lower_bound: int  # no plan serves the demand on fewer devices
    bound_devices: float  # the fractional bound: total work / per-device capacity
    source: str  # which candidate won, e.g. "elastic#3+repack", "temporal+repack", "optimal"
    exact_status: str  # CP-SAT status on small instances, "skipped" otherwise
    candidates: dict[str, int]  # devices each candidate used (before and after repack)

    @property
    def devices(self) -> int:
        return len(self.plan.devices)

    @property
    def gap(self) -> int:
        return self.devices - self.lower_bound


def best_rate_per_unit(m: ModelInfo, device: DeviceSpec, sizes: Sequence[int]) -> float:
    """Most requests/s one slice unit of `device` serves for `m` (any size, batch, processes)."""
    best = 0.0
    for size in sizes:
        cap = slice_cap_mb(device, size)
        for k in (1, *sorted(m.proc_curves)):
            lat = m.curve(size, k)[: m.batch_cap(cap, k)]
            thr = max((1000.0 * k * b / l for b, l in enumerate(lat, 1) if 2 * l <= m.slo_ms + EPS), default=0.0)
            best = max(best, thr / size)
    return best


def device_lower_bound(ctx: PlanningContext) -> float:
    """Fractional devices the planned rates need at the best possible efficiency."""
    device = ctx.devices[0]
    work = 0.0
    for m in ctx.models:
        per_unit = best_rate_per_unit(m, device, ctx.sizes)
        work += m.rate_rps / per_unit if per_unit > 0 else math.inf
    return work / device.capacity


def seat_lower_bound(ctx: PlanningContext) -> int:
    """Devices needed to give every model a seat: each model runs on at least one slice, a slice
    holds at most max_models_per_slice models (a whole device in temporal mode at most
    max_models_per_device_temporal), a device at most max_slices slices."""
    cfg = ctx.config
    seats = max(ctx.max_slices(ctx.devices[0]) * cfg.max_models_per_slice, cfg.max_models_per_device_temporal)
    return math.ceil(len(ctx.models) / max(1, seats))


def repack(b: Builder) -> int:
    """Empty the least-loaded devices into the others while everything still fits; returns the
    number of devices removed."""
    b.close_pool()
    removed = 0
    tried: set[int] = set()
    while len(tried) < REPACK_TRIES:
        cands = [d for d in b.open_devices() if d not in tried and b.slices[d]]
        if len(cands) < 2:
            break
        dev = min(cands, key=lambda d: (_load(b, d), -d))
        tried.add(dev)
        if _empty(b, dev):
            removed += 1
            tried.clear()
    return removed


def _spare(b: Builder) -> float:
    """Unused slice capacity of the open devices (in devices): more is easier to repack into."""
    return sum(1.0 - _load(b, d) for d in b.slices if b.slices[d])


def _load(b: Builder, dev: int) -> float:
    return sum(s.size * s.utilisation for s in b.slices[dev]) / b.device(dev).capacity


def _empty(b: Builder, dev: int) -> bool:
    snap = b.snapshot()
    work = sorted(((e.model, e.rate_rps) for s in b.slices[dev] for e in s.entries), key=lambda t: (-t[1], t[0].name))
    del b.slices[dev]
    for _ in range(3):  # the traffic, then what placing it cut from neighbours (interference)
        for m, rate in work:
            if place_rate(b, m, rate, REPACK_VARIANT) > EPS * max(1.0, rate):
                b.restore(snap)
                return False
        work = b.take_spill()
    if work:
        b.restore(snap)
        return False
    return True


def _candidates(ctx: PlanningContext) -> list[tuple[str, Builder, Variant]]:
    out: list[tuple[str, Builder, Variant]] = []
    for i, variant in enumerate(variants_for(ctx)):
        out.append((f"elastic#{i}", run_variant(ctx, variant, finish=False), variant))
    out.append(("temporal", temporal_builder(ctx), Variant()))
    return out


def solve_min_devices(
    demands: Sequence[Demand],
    profiles: Profiles,
    devices: Sequence[DeviceSpec],
    config: PlannerConfig | None = None,
    exact_max_models: int = 6,
) -> MinDevicesResult:
    """The fewest devices of the pool `devices` that serve the demand (see the module doc)."""
    cfg = config or PlannerConfig()
    ctx = build_context(demands, profiles, devices, cfg)
    bound = device_lower_bound(ctx)
    counts: dict[str, int] = {}
    best: tuple[tuple[float, int, float], Plan, str] | None = None
    cands = _candidates(ctx)
    for name, b, _ in cands:
        counts[name] = len([d for d in b.slices if b.slices[d]])
    ranked = sorted(cands, key=lambda c: (round(sum(c[1].unserved.values()), 6), counts[c[0]], -_spare(c[1])))
    for rank, (name, b, variant) in enumerate(ranked):
        if rank < REPACK_BEST and not b.unserved:
            repack(b)
            counts[name + "+repack"] = len([d for d in b.slices if b.slices[d]])
            name += "+repack"
        finish_plan(b, variant)
        p = b.to_plan("min-devices")
        key = (round(sum(p.unserved.values()), 6), len(p.devices), -sum(s.utilisation for s in p.slices))
        if best is None or key < best[0]:
            best = (key, p, name)
    assert best is not None
    lower = max(1, math.ceil(bound - 1e-9), seat_lower_bound(ctx)) if ctx.models else 0
    status = "skipped"
    if len(best[1].devices) <= lower and not best[1].unserved:
        status = "not needed (at the bound)"
    elif len(ctx.models) <= exact_max_models and len({d.capacity for d in devices}) == 1:
        best, status = _try_exact(demands, profiles, devices, cfg, best, counts)
    return MinDevicesResult(best[1], lower, round(bound, 4), best[2], status, counts)


def _try_exact(
    demands: Sequence[Demand],
    profiles: Profiles,
    devices: Sequence[DeviceSpec],
    cfg: PlannerConfig,
    best: tuple[tuple[float, int, float], Plan, str],
    counts: dict[str, int],
) -> tuple[tuple[tuple[float, int, float], Plan, str], str]:
    """CP-SAT's spatial program on a pool as large as the best heuristic plan; kept if fewer."""
    pool = list(devices[: max(1, len(best[1].devices))])
    res = solve_optimal(demands, profiles, pool, cfg)
    p = res.plan
    if res.status in ("OPTIMAL", "FEASIBLE"):
        counts["optimal"] = len(p.devices)
    if not p.unserved and len(p.devices) < len(best[1].devices):
        relabelled = Plan("min-devices", p.devices, p.slices, dict(p.unserved))
        return ((0.0, len(p.devices), 0.0), relabelled, "optimal"), res.status
    return best, res.status


def plan_min_devices(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig | None = None
) -> Plan:
    return solve_min_devices(demands, profiles, devices, config).plan
