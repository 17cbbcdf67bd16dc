"""Check a plan against its own latency model: every SLO met, no device oversubscribed.

Used by the tests (property tests run it on every plan a policy returns) and by `modelplex plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import Plan, SlicePlan
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import ModelInfo, Profiles, build_context, slice_cap_mb
from modelplex.planning.menus import layout_ok
from modelplex.planning.interference import NoInterference
from modelplex.planning.mig import check_mig_starts, device_model
from modelplex.planning.neighbours import slice_alphas

TOL = 1e-6


def check_plan(
    plan: Plan, demands: Sequence[Demand], profiles: Profiles, config: PlannerConfig | None = None
) -> list[str]:
    """Problems found, one line each; empty when the plan is sound."""
    cfg = config or PlannerConfig()
    ctx = build_context(demands, profiles, plan.devices or (), cfg) if plan.devices else None
    problems: list[str] = []
    slo = {d.model: d.slo_ms for d in demands}
    devices = {d.device_id: d for d in plan.devices}
    models = {m.name: m for m in ctx.models} if ctx else {}
    for dev in devices.values():
        problems += device_problems(plan, dev, ctx.max_slices(dev) if ctx else None)
    for s in plan.slices:
        if s.slice.device_id not in devices:
            problems.append(f"slice {s.slice_id}: unknown device {s.slice.device_id}")
            continue
        missing = [a.model for a in s.assignments if a.model not in models]
        problems += [f"slice {s.slice_id}: model {name} not in the demand" for name in missing]
        if not missing and s.assignments:
            problems += slice_problems(s, models, slo, devices[s.slice.device_id])
    if ctx is not None and not isinstance(cfg.interference, NoInterference):
        problems += interference_problems(plan, models, cfg)
    for dev in devices.values():
        used = sum(_memory_mb(s, models) for s in plan.slices if s.slice.device_id == dev.device_id)
        if dev.memory_mb > 0 and used > dev.memory_mb * (1 + TOL):
            problems.append(f"device {dev.device_id}: workers need {used:.0f} MB, more than its {dev.memory_mb} MB")
    for m in models.values():
        served = plan.served_rate_rps(m.name) + plan.unserved.get(m.name, 0.0)
        if served < m.rate_rps * (1 - 1e-6) - 1e-6:
            problems.append(f"model {m.name}: plan accounts for {served:.2f} of {m.rate_rps:.2f} rps")
    return problems


def device_problems(plan: Plan, dev: DeviceSpec, max_slices: int | None = None) -> list[str]:
    """Layout problems of one device: sizes the device refuses, and on MIG GPUs the exact
    placement (explicit `mig_start`s must be starts of the GPU model's table, non-overlapping)."""
    mine = [s for s in plan.slices if s.slice.device_id == dev.device_id]
    sizes = [s.slice.size for s in mine]
    if not layout_ok(dev, sizes, max_slices):
        return [f"device {dev.device_id}: slices {sizes} do not fit (capacity {dev.capacity})"]
    if dev.kind is DeviceKind.GPU_MIG and any(s.slice.mig_start >= 0 for s in mine):
        why = check_mig_starts(device_model(dev), [(s.slice.size, s.slice.mig_start) for s in mine])
        if why is not None:
            return [f"device {dev.device_id}: MIG placement refused: {why}"]
    return []


def plan_capacity_rps(plan: Plan) -> dict[str, float]:
    """Per model, the most traffic the plan's slices carry under their own latency model: a
    slice alone serves batch / latency; a shared slice scales its rates by 1 / utilisation."""
    cap: dict[str, float] = {}
    for s in plan.slices:
        for a in s.assignments:
            if len(s.assignments) == 1 and s.duty_cycle_ms == 0:
                extra = 1000.0 * a.batch / a.latency_ms
            else:
                extra = a.rate_rps / max(s.utilisation, 1e-9)
            cap[a.model] = cap.get(a.model, 0.0) + extra
    return cap


def _memory_mb(s: SlicePlan, models: Mapping[str, ModelInfo]) -> float:
    """Device memory a slice's workers need, recomputed from the profiles (not the plan's say)."""
    if any(a.model not in models for a in s.assignments) or not s.assignments:
        return 0.0
    first = models[s.assignments[0].model]
    if len(s.assignments) == 1:
        return first.worker_mb(s.assignments[0].batch, s.processes)
    return first.context_mb + sum(models[a.model].memory_mb + a.batch * models[a.model].act_mb for a in s.assignments)


def slice_problems(
    s: SlicePlan, models: Mapping[str, ModelInfo], slo: Mapping[str, float], dev: DeviceSpec
) -> list[str]:
    """Latency, throughput, duty-cycle and memory problems of one slice."""
    out: list[str] = []
    k = s.processes
    if k < 1 or (k > 1 and len(s.assignments) > 1):
        return [f"slice {s.slice_id}: {k} processes; more than one needs a slice of one model"]
    for a in s.assignments:
        m = models[a.model]
        if k > 1 and k not in m.proc_curves:
            return [f"slice {s.slice_id}: {a.model} has no profile with {k} processes"]
        curve = m.curve(s.slice.size, k)
        if not 1 <= a.batch <= len(curve):
            out.append(f"slice {s.slice_id}: {a.model} batch {a.batch} outside 1..{len(curve)}")
            continue
        solo = curve[a.batch - 1]
        if a.latency_ms < solo * (1 - TOL):
            out.append(f"slice {s.slice_id}: {a.model} latency {a.latency_ms:.3f} ms below its profile {solo:.3f} ms")
    need, cap = _memory_mb(s, models), slice_cap_mb(dev, s.slice.size)
    if need > cap * (1 + TOL):
        out.append(f"slice {s.slice_id}: workers need {need:.0f} MB, the slice holds {cap:.0f} MB")
    if len(s.assignments) == 1 and s.duty_cycle_ms == 0:
        a = s.assignments[0]
        if 2 * a.latency_ms > slo[a.model] * (1 + TOL):
            out.append(f"slice {s.slice_id}: {a.model} 2 x {a.latency_ms:.3f} ms exceeds SLO {slo[a.model]:g} ms")
        if a.rate_rps > 1000 * a.batch * k / a.latency_ms * (1 + TOL):
            out.append(f"slice {s.slice_id}: {a.model} rate {a.rate_rps:.1f} rps above throughput")
        return out
    busy = sum(a.latency_ms for a in s.assignments)
    d = s.duty_cycle_ms
    if busy > d * (1 + TOL) + TOL:
        out.append(f"slice {s.slice_id}: turns take {busy:.3f} ms, more than the duty cycle {d:.3f} ms")
    for a in s.assignments:
        if d + busy > slo[a.model] * (1 + TOL) + TOL:
            out.append(f"slice {s.slice_id}: {a.model} waits {d + busy:.3f} ms, above SLO {slo[a.model]:g} ms")
        if a.batch * 1000 < d * a.rate_rps * (1 - TOL) - TOL:
            out.append(f"slice {s.slice_id}: {a.model} batch {a.batch} below a cycle's arrivals")
    return out


def interference_problems(plan: Plan, models: Mapping[str, ModelInfo], cfg: PlannerConfig) -> list[str]:
    """Slices whose planned latency is below the profile x the slowdown the interference model
    predicts from the plan's own layout and batches."""
    out: list[str] = []
    for dev in plan.devices:
        mine = [s for s in plan.slices if s.slice.device_id == dev.device_id and all(a.model in models for a in s.assignments)]
        layout = [(s.slice.size, [(models[a.model], a.rate_rps) for a in s.assignments]) for s in mine]
        alphas = slice_alphas(cfg.interference, dev, layout, [[a.batch for a in s.assignments] for s in mine])
        for s, alpha in zip(mine, alphas):
            for a in s.assignments:
                curve = models[a.model].curve(s.slice.size, s.processes) if s.processes in (1, *models[a.model].proc_curves) else []
                if 1 <= a.batch <= len(curve) and a.latency_ms < curve[a.batch - 1] * alpha * (1 - TOL):
                    out.append(f"slice {s.slice_id}: {a.model} latency {a.latency_ms:.3f} ms below profile x slowdown {alpha:.3f}")
    return out
