"""Whether a plan posted to a running server can run there (pure): every field in range, every
core and GPU it names one the server has, no core in two slices, no more CPU slices than cores,
every model one the server serves. Each problem names its field, e.g.
`slices[3].assignments[0].batch: must be at least 1, got 0`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan

MAX_PROCESSES_PER_SLICE = 8  # worker processes one slice may run at once (MPS inside the slice)
MAX_BATCH = 65536  # batch bound for a model the host does not serve (reported on its own)


@dataclass(frozen=True)
class HostShape:
    """What a server has to run a plan on."""

    cores: int  # host cores it cuts into slices; a plan numbers them 0..cores-1
    gpu_ids: tuple[str, ...]  # GPU devices it may plan onto ("gpu0", ...); empty: none (no --gpus)
    max_batch: Mapping[str, int]  # model it serves -> its max_batch_size (0 = does not batch)


def admit_problems(plan: Plan, host: HostShape) -> list[str]:
    """Problems that keep `plan` off this host, one line each, field first; empty when it fits."""
    out = _device_problems(plan.devices, host)
    kinds = {d.device_id: d.kind for d in plan.devices}
    seen_ids: dict[str, int] = {}
    for i, s in enumerate(plan.slices):
        path = f"slices[{i}]"
        if not s.slice_id:
            out.append(f"{path}.slice_id: must not be empty")
        elif s.slice_id in seen_ids:
            out.append(f"{path}.slice_id: {s.slice_id!r} is also the id of slices[{seen_ids[s.slice_id]}]")
        seen_ids.setdefault(s.slice_id, i)
        if s.slice.device_id not in kinds:
            out.append(f"{path}.device_id: {s.slice.device_id!r} is not one of the plan's devices")
        out += _slice_problems(s, path, host)
    out += _core_problems(plan, kinds, host.cores)
    out += _gpu_share_problems(plan)
    for model, rate in plan.unserved.items():
        if not math.isfinite(rate) or rate < 0:
            out.append(f"unserved.{model}: must be a finite number >= 0, got {rate}")
    if not plan.slices:
        out.append("slices: a plan needs at least one slice")
    return out


def _device_problems(devices: tuple[DeviceSpec, ...], host: HostShape) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i, d in enumerate(devices):
        path = f"devices[{i}]"
        if d.device_id in seen:
            out.append(f"{path}.device_id: {d.device_id!r} is listed twice")
        seen.add(d.device_id)
        if d.capacity < 1:
            out.append(f"{path}.capacity: must be at least 1, got {d.capacity}")
        gpu_named = d.device_id.startswith("gpu")
        if d.kind is DeviceKind.CPU and gpu_named:
            out.append(f"{path}.device_id: a cpu device may not be called {d.device_id!r} (gpu* names GPUs)")
        elif d.kind is not DeviceKind.CPU and not host.gpu_ids:
            out.append(f"{path}: {d.device_id!r} is a GPU; this server plans no GPUs (start it with --gpus)")
        elif d.kind is not DeviceKind.CPU and d.device_id not in host.gpu_ids:
            out.append(f"{path}.device_id: no GPU {d.device_id!r} on this server (it has {', '.join(host.gpu_ids)})")
    return out


def _slice_problems(s: SlicePlan, path: str, host: HostShape) -> list[str]:
    out: list[str] = []
    if s.slice.size < 1:
        out.append(f"{path}.size: must be at least 1, got {s.slice.size}")
    if not 1 <= s.processes <= MAX_PROCESSES_PER_SLICE:
        out.append(f"{path}.processes: must be 1..{MAX_PROCESSES_PER_SLICE}, got {s.processes}")
    elif s.processes > 1 and len(s.assignments) > 1:
        out.append(f"{path}.processes: {s.processes} processes need a slice of one model, it has {len(s.assignments)}")
    for name, value in (("duty_cycle_ms", s.duty_cycle_ms), ("utilisation", s.utilisation), ("memory_mb", s.memory_mb)):
        if not math.isfinite(value) or value < 0:
            out.append(f"{path}.{name}: must be a finite number >= 0, got {value}")
    if not s.assignments:
        out.append(f"{path}.assignments: a slice needs at least one model")
    models: dict[str, int] = {}
    for j, a in enumerate(s.assignments):
        apath = f"{path}.assignments[{j}]"
        if a.model in models:
            out.append(f"{apath}.model: {a.model!r} is already assignments[{models[a.model]}] of this slice")
        models.setdefault(a.model, j)
        out += _assignment_problems(a, apath, host)
    return out


def _assignment_problems(a: ModelAssignment, path: str, host: HostShape) -> list[str]:
    out: list[str] = []
    if a.model not in host.max_batch:
        known = ", ".join(sorted(host.max_batch)[:10])
        out.append(f"{path}.model: this server has no model {a.model!r} (it serves {known or 'none'})")
    most = max(1, host.max_batch.get(a.model, MAX_BATCH))
    if a.batch < 1:
        out.append(f"{path}.batch: must be at least 1, got {a.batch}")
    elif a.batch > most:
        out.append(f"{path}.batch: must be at most {most} (model {a.model}'s max_batch_size), got {a.batch}")
    if not math.isfinite(a.share) or not 0 < a.share <= 1:
        out.append(f"{path}.share: must be in (0, 1], got {a.share}")
    for name, value in (("rate_rps", a.rate_rps), ("latency_ms", a.latency_ms)):
        if not math.isfinite(value) or value < 0:
            out.append(f"{path}.{name}: must be a finite number >= 0, got {value}")
    return out


def _core_problems(plan: Plan, kinds: Mapping[str, DeviceKind], cores: int) -> list[str]:
    """CPU slices: cores that exist, none in two slices (a slice naming no cores takes them all),
    at most one slice per core."""
    out: list[str] = []
    owner: dict[int, int] = {}
    cpu_slices = [(i, s) for i, s in enumerate(plan.slices) if kinds.get(s.slice.device_id, DeviceKind.CPU) is DeviceKind.CPU
                  and not s.slice.device_id.startswith("gpu")]
    if len(cpu_slices) > cores:
        out.append(f"slices: {len(cpu_slices)} CPU slices, this server has {cores} cores (at most one slice per core)")
    for i, s in cpu_slices:
        path = f"slices[{i}].cpus"
        for k, c in enumerate(s.slice.cpus or tuple(range(cores))):
            where = f"{path}[{k}]" if s.slice.cpus else f"{path} (empty: every core)"
            if not 0 <= c < cores:
                out.append(f"{where}: core {c} does not exist, this server has {cores} cores (0..{cores - 1})")
            elif c in owner and owner[c] != i:
                out.append(f"{where}: core {c} is also used by slices[{owner[c]}]")
            elif c in owner:
                out.append(f"{where}: core {c} is listed twice")
            owner.setdefault(c, i)
    return out


def _gpu_share_problems(plan: Plan) -> list[str]:
    """GPU devices: their slices' sizes add up to at most the device's capacity."""
    out: list[str] = []
    for d in plan.devices:
        if d.kind is DeviceKind.CPU:
            continue
        used = sum(s.slice.size for s in plan.slices if s.slice.device_id == d.device_id)
        if used > d.capacity:
            out.append(f"slices: the slices on {d.device_id} take {used}, more than its capacity {d.capacity}")
    return out
