"""The frontend as a tenant of the host CPU: cores a plan leaves to the server's own process.

The frontend (one process: HTTP/gRPC parsing, admission, batching, answers) spends CPU on every
request, the more so the smaller the model: 125 µs per request with binary tensors and about
300 µs with JSON or gRPC at 32 in flight on our 2-core benchmark host, where a small CNN costs
234 µs of ONNX Runtime per image (benchmarks/README.md, "Data path"). A plan that cuts every core
into slices makes the frontend compete with the workers it feeds.

So on a CPU host the planner keeps the frontend `frontend_cores` cores (the first ones) for the
load it predicts, `rate x measured µs per request`, at most `TARGET_UTIL` busy, and at least one
where the host has two or more; it plans the models on the other cores. Where the models' demand
does not fit on what is left, it keeps fewer cores, down to none (the frontend then shares the
cores with the workers, as every plan did before). GPU devices are planned as they are: the
frontend's CPU is not theirs. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning import plan as make_plan
from modelplex.planning.context import Profiles

TARGET_UTIL = 0.8  # a core kept for the frontend is planned at most this busy
UNSERVED_EPS_RPS = 1e-6  # below this, a plan's unserved traffic is rounding

PlanOn = Callable[[Sequence[DeviceSpec]], Plan]  # a policy with demand and profiles bound: devices -> plan


def frontend_load(demands: Sequence[Demand], us_per_request: float) -> float:
    """Cores' worth of CPU the frontend needs for `demands` (0.5 = half a core)."""
    return sum(d.rate_rps for d in demands) * max(0.0, us_per_request) / 1e6


def cores_wanted(demands: Sequence[Demand], us_per_request: float) -> int:
    """Cores the frontend wants for `demands`, whatever the host: ceil(load / TARGET_UTIL), at least 1."""
    return max(1, math.ceil(frontend_load(demands, us_per_request) / TARGET_UTIL - 1e-9))


def frontend_cores(demands: Sequence[Demand], us_per_request: float, capacity: int) -> int:
    """Cores to keep for the frontend on a host of `capacity` cores, before checking that the
    models still fit: `cores_wanted`, at most capacity - 1 (0 on one core)."""
    if capacity < 2:
        return 0
    return min(capacity - 1, cores_wanted(demands, us_per_request))


def plan_beside_frontend(plan_on: PlanOn, devices: Sequence[DeviceSpec], demands: Sequence[Demand],
                         us_per_request: float) -> Plan:
    """The plan with the most cores kept for the frontend (up to `frontend_cores`) that still
    serves every model's demand; the plan on every core when none does. Kept cores are the
    host's first ones: the plan's slices are numbered from the core after them."""
    hosts = [d for d in devices if d.kind is DeviceKind.CPU]
    if len(hosts) != 1:
        return plan_on(devices)
    host = hosts[0]
    for keep in range(frontend_cores(demands, us_per_request, host.capacity), 0, -1):
        smaller = dataclasses.replace(host, capacity=host.capacity - keep)
        trial = plan_on([smaller if d is host else d for d in devices])
        if sum(trial.unserved.values()) <= UNSERVED_EPS_RPS:
            return shift_cores(trial, host, keep)
    return plan_on(devices)


def planner_beside_frontend(policy: str, profiles: Profiles, devices: Sequence[DeviceSpec]
                            ) -> Callable[[Sequence[Demand], float], Plan]:
    """The named policy over fixed profiles and devices, as the controller calls it:
    (demands, the frontend's CPU µs per request) -> a plan beside the frontend."""
    kept_profiles = dict(profiles) if isinstance(profiles, Mapping) else list(profiles)
    kept_devices = list(devices)

    def planner(demands: Sequence[Demand], us_per_request: float) -> Plan:
        return plan_beside_frontend(lambda devs: make_plan(demands, kept_profiles, devs, policy=policy),
                                    kept_devices, demands, us_per_request)

    return planner


def shift_cores(plan: Plan, host: DeviceSpec, keep: int) -> Plan:
    """`plan`, made on the host less its first `keep` cores, as a plan of the whole host: its
    CPU slices' cores move up by `keep`."""
    slices = tuple(
        dataclasses.replace(s, slice=dataclasses.replace(s.slice, cpus=tuple(c + keep for c in s.slice.cpus)))
        if s.slice.device_id == host.device_id else s
        for s in plan.slices
    )
    devices = tuple(host if d.device_id == host.device_id else d for d in plan.devices)
    return dataclasses.replace(plan, devices=devices, slices=slices)


def kept_cores(plan: Plan) -> dict[str, tuple[int, ...]]:
    """Per CPU device of `plan`, the cores no slice uses (those left to the frontend)."""
    out: dict[str, tuple[int, ...]] = {}
    for d in plan.devices:
        if d.kind is not DeviceKind.CPU:
            continue
        used = {c for s in plan.slices if s.slice.device_id == d.device_id for c in s.slice.cpus}
        if any(s.slice.device_id == d.device_id and not s.slice.cpus for s in plan.slices):
            used = set(range(d.capacity))  # a slice without exact cores may run on any
        out[d.device_id] = tuple(c for c in range(d.capacity) if c not in used)
    return out


def kept_words(cores: Sequence[int]) -> str:
    """The cores left to the frontend, as plan logs and the CLI say it."""
    return f"core(s) {list(cores)} left to the frontend" if cores else "no core left to the frontend alone"
