"""The naive baseline: each model on whole devices of its own, its rate spread evenly."""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning.builder import Builder, capacity_rps
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import Profiles, build_context


def plan_exclusive(
    demands: Sequence[Demand], profiles: Profiles, devices: Sequence[DeviceSpec], config: PlannerConfig | None = None
) -> Plan:
    cfg = config or PlannerConfig()
    ctx = build_context(demands, profiles, devices, cfg)
    b = Builder(ctx)
    for m in ctx.models:
        full = ctx.devices[0].capacity
        need = max(1, math.ceil(m.rate_rps / capacity_rps(m, full) - 1e-9))
        each = m.rate_rps / need
        placed = 0.0
        for _ in range(need):
            dev = b.open_device()
            if dev is None:
                break
            placed += b.place(dev, full, m, each)
        b.add_unserved(m, m.rate_rps - placed)
    return b.to_plan("exclusive")
