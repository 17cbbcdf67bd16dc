"""The time-sharing-only baseline (Nexus-style squishy bin packing on whole devices).

Per model: whole-device saturated slices while the rate fills them, then the leftover joins the
duty cycle of the device it packs most tightly into (the busiest that still meets every SLO),
else a new device.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning.builder import Builder, capacity_rps
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import PlanningContext, Profiles, build_context
from modelplex.planning.rules import EPS


def plan_temporal(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig | None = None
) -> Plan:
    cfg = config or PlannerConfig()
    ctx = build_context(demands, profiles, devices, cfg)
    return temporal_builder(ctx).to_plan("temporal")


def temporal_builder(ctx: PlanningContext) -> Builder:
    """Every model placed by the temporal rules (module doc) on the pool of `ctx`."""
    cfg = ctx.config
    b = Builder(ctx)
    order = sorted(ctx.models, key=lambda m: (-m.rate_rps * m.slo_ms, m.name))
    for m in order:
        remaining = m.rate_rps
        while remaining > EPS * max(1.0, m.rate_rps):
            got = 0.0
            full_cap = capacity_rps(m, ctx.devices[0].capacity)
            if remaining < full_cap:
                got = b.timeshare_into(m, remaining, cfg.max_models_per_device_temporal)
            if got <= 0:
                dev = b.open_device()
                if dev is not None:
                    got = b.place(dev, b.device(dev).capacity, m, remaining)
            if got <= 0:
                got = b.timeshare_into(m, remaining, cfg.max_models_per_device_temporal)
            if got <= 0:
                break
            remaining -= got
        b.add_unserved(m, remaining)
    return b
