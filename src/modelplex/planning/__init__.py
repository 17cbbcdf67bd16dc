"""Planning policies: demand x profiles x devices -> Plan (pure, deterministic).

    from modelplex.planning import plan
    p = plan(demands, profiles, devices, policy="elastic")

Policies: `elastic` (gpu-let spatio-temporal partitioning), `temporal` (whole devices shared in
time), `exclusive` (one model per device), `optimal` (CP-SAT, small instances), `min-devices`
(the fewest devices: every candidate repacked, with a lower bound; see mindevices.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning.config import PlannerConfig
from modelplex.planning.context import Profiles
from modelplex.planning.elastic import plan_elastic
from modelplex.planning.exclusive import plan_exclusive
from modelplex.planning.interference import LinearInterference, NoInterference
from modelplex.planning.mindevices import MinDevicesResult, plan_min_devices, solve_min_devices
from modelplex.planning.optimal import plan_optimal
from modelplex.planning.temporal import plan_temporal
from modelplex.planning.validate import check_plan

PolicyFn = Callable[[Sequence[Demand], Profiles, Sequence[DeviceSpec], PlannerConfig | None], Plan]

POLICIES: dict[str, PolicyFn] = {
    "elastic": plan_elastic,
    "temporal": plan_temporal,
    "exclusive": plan_exclusive,
    "optimal": plan_optimal,
    "min-devices": plan_min_devices,
}


def get_policy(name: str) -> PolicyFn:
    try:
        return POLICIES[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None


def plan(
    demands: Sequence[Demand],
    profiles: Profiles,
    devices: Sequence[DeviceSpec],
    policy: str = "elastic",
    config: PlannerConfig | None = None,
) -> Plan:
    """Plan with the named policy."""
    return get_policy(policy)(demands, profiles, devices, config)


__all__ = [
    "POLICIES",
    "LinearInterference",
    "MinDevicesResult",
    "NoInterference",
    "PlannerConfig",
    "PolicyFn",
    "check_plan",
    "get_policy",
    "plan",
    "solve_min_devices",
]
