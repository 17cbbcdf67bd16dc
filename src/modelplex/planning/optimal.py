"""The exact baseline: the fewest devices (and, when the pool is too small, the most traffic)
as an integer program solved with OR-Tools CP-SAT, for small instances.

Model: devices are interchangeable, so the program counts devices per *layout* (a maximal set of
slice sizes one device may hold) instead of naming them; each slice serves one model at its
SLO/2-rule throughput (no time sharing, no interference: both make the problem non-linear).
Variables: n[c] devices cut as layout c; w[m, p] slices of size p given to model m;
served[m] <= planned rate. Constraints: sum n <= pool; sum_m w[m, p] <= slices of size p cut;
served[m] <= sum_p w[m, p] * throughput(m, p). Objective: serve the most, then use the fewest
devices, then the least slice capacity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import UnsupportedError
from modelplex.core.plan import Plan
from modelplex.planning.builder import Builder, Layout, capacity_rps
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import Profiles, build_context
from modelplex.planning.menus import layout_ok, slice_menu

if TYPE_CHECKING:  # OR-Tools is imported when this policy runs: a host serving other policies needs none
    from ortools.sat.python import cp_model

MAX_LAYOUTS = 2000
SCALE = 1000  # rates in milli-requests per second inside the program


@dataclass(frozen=True)
class OptimalResult:
    """The plan and how the solver ended."""

    plan: Plan  # the plan built from the solution
    status: str  # "OPTIMAL", "FEASIBLE" (time limit hit), or "INFEASIBLE"/"UNKNOWN"
    wall_s: float  # solver wall time


def maximal_layouts(device: DeviceSpec, max_slices: int) -> list[tuple[int, ...]]:
    """Every layout of one device to which no further slice can be added."""
    menu = slice_menu(device)
    out: list[tuple[int, ...]] = []
    for k in range(1, max_slices + 1):
        for combo in itertools.combinations_with_replacement(menu, k):
            if not layout_ok(device, combo, max_slices):
                continue
            if any(layout_ok(device, (*combo, q), max_slices) for q in menu):
                continue
            out.append(combo)
            if len(out) > MAX_LAYOUTS:
                raise UnsupportedError(f"optimal: device {device.device_id} has too many layouts to enumerate")
    return out


def solve_optimal(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig | None = None
) -> OptimalResult:
    cfg = config or PlannerConfig()
    ctx = build_context(demands, profiles, devices, cfg)
    if len({d.capacity for d in ctx.devices}) > 1:
        raise UnsupportedError("optimal: devices must all have the same capacity")
    device = ctx.devices[0]
    pool = len(ctx.devices)
    layouts = maximal_layouts(device, ctx.max_slices(device))
    sizes = sorted({s for lay in layouts for s in lay})
    models = ctx.models
    thr = {(m.name, p): int(capacity_rps(m, p) * SCALE) for m in models for p in sizes}
    from ortools.sat.python import cp_model

    mdl = cp_model.CpModel()
    n = [mdl.new_int_var(0, pool, f"n{c}") for c in range(len(layouts))]
    mdl.add(sum(n) <= pool)
    w: dict[tuple[str, int], cp_model.IntVar] = {}
    for p in sizes:
        most = pool * max(lay.count(p) for lay in layouts)
        cut = sum(n[c] * lay.count(p) for c, lay in enumerate(layouts) if p in lay)
        usable = [m for m in models if thr[(m.name, p)] > 0]
        for m in usable:
            w[(m.name, p)] = mdl.new_int_var(0, most, f"w_{m.name}_{p}")
        mdl.add(sum(w[(m.name, p)] for m in usable) <= cut)
    served = {}
    for m in models:
        need = int(m.rate_rps * SCALE + 0.999)
        served[m.name] = mdl.new_int_var(0, need, f"s_{m.name}")
        mdl.add(served[m.name] <= sum(w[(m.name, p)] * thr[(m.name, p)] for p in sizes if (m.name, p) in w))
    # lexicographic by weights: any served milli-rps beats any device, any device beats any slice unit
    slice_units = device.capacity * pool
    weight_dev = slice_units + 1
    weight_served = pool * weight_dev + slice_units + 1
    mdl.maximize(
        sum(served.values()) * weight_served - sum(n) * weight_dev - sum(w[(name, p)] * p for (name, p) in w)
    )
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = cfg.time_limit_s
    solver.parameters.num_workers = 2
    status = solver.solve(mdl)
    status_name = solver.status_name(status)
    b = Builder(ctx)
    if status_name not in ("OPTIMAL", "FEASIBLE"):
        for m in models:
            b.add_unserved(m, m.rate_rps)
        return OptimalResult(b.to_plan("optimal"), status_name, solver.wall_time)
    _materialise(b, solver, layouts, sizes, n, w, served)
    return OptimalResult(b.to_plan("optimal"), status_name, solver.wall_time)


def _materialise(
    b: Builder,
    solver: cp_model.CpSolver,
    layouts: list[tuple[int, ...]],
    sizes: list[int],
    n: list[cp_model.IntVar],
    w: dict[tuple[str, int], cp_model.IntVar],
    served: dict[str, cp_model.IntVar],
) -> None:
    """Cut the devices of the solution, then hand out slices of each size to models."""
    models = b.ctx.models
    free: dict[int, list[tuple[int, int]]] = {p: [] for p in sizes}  # size -> [(device, slot)]
    device_layouts: list[list[int]] = []
    for c, lay in enumerate(layouts):
        for _ in range(solver.value(n[c])):
            dev = b.open_device()
            assert dev is not None
            device_layouts.append(list(lay))
            for slot, p in enumerate(lay):
                free[p].append((dev, slot))
    work: dict[tuple[int, int], tuple[str, float]] = {}
    by_name = {m.name: m for m in models}
    for m in models:
        mine = [(p, solver.value(w[(m.name, p)])) for p in sizes if (m.name, p) in w]
        cap = sum(k * capacity_rps(m, p) for p, k in mine)
        rate = min(m.rate_rps, solver.value(served[m.name]) / SCALE)
        for p, k in mine:
            for _ in range(k):
                dev, slot = free[p].pop()
                if cap > 0:
                    work[(dev, slot)] = (m.name, rate * capacity_rps(m, p) / cap)
        b.add_unserved(m, m.rate_rps - rate)
    for i, dev in enumerate(b.open_devices()):
        device_work: Layout = [
            (p, [(by_name[work[(dev, slot)][0]], work[(dev, slot)][1])])
            for slot, p in enumerate(device_layouts[i])
            if (dev, slot) in work
        ]
        if not b.commit(dev, device_work):
            for _, items in device_work:
                for m_, r in items:
                    b.add_unserved(m_, r)
    b.slices = {d: s for d, s in b.slices.items() if s}
    b.expand()  # like elastic: slices grow into capacity the solution leaves unused


def plan_optimal(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig | None = None
) -> Plan:
    return solve_optimal(demands, profiles, devices, config).plan
