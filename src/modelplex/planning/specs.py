"""Text formats of the planning CLI (parsing only; callers read the files).

Demand YAML -- a list of models, or a mapping with a `models:` list:

    models:
      - model: resnet50     # model name (must have a profile)
        rate_rps: 200       # mean request rate, >= 0
        slo_ms: 108         # latency objective, > 0

A short form maps names to {rate_rps, slo_ms}:  `resnet50: {rate_rps: 200, slo_ms: 108}`.

Devices SPEC -- comma-separated `KIND:COUNT[xSIZE]` terms of one kind:

    gpu:4        four GPUs shared with MPS (slices in % of SMs)
    mig:2        two H100 GPUs cut into MIG instances (slices in sevenths)
    mig:2@a100-80gb   a GPU model from planning/mig.py (a100-40gb, a100-80gb, h100-80gb,
                 h200-141gb; rtx2080ti for MPS only): its MIG placement table and memory
    cpu:16       one host CPU with 16 cores (slices in cores)
    cpu:2x8      two hosts with 8 cores each

Profiles JSON -- a list of Profile.to_json objects, or {"profiles": [...]}, or {name: profile}.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile
from modelplex.planning.mig import DEFAULT_GPU_MODEL, gpu_model

_TERM = re.compile(r"^(gpu|mps|mig|cpu):(\d+)(?:x(\d+))?(?:@([a-z0-9.-]+))?$")


def demands_from_data(data: Any) -> list[Demand]:
    if isinstance(data, Mapping) and "models" in data:
        data = data["models"]
    items: list[tuple[str, Any]] = []
    if isinstance(data, Mapping):
        items = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        for i, entry in enumerate(data):
            if not isinstance(entry, Mapping) or "model" not in entry:
                raise InvalidArgumentError(f"demand: entry {i + 1} must be a mapping with a 'model' key")
            items.append((str(entry["model"]), entry))
    else:
        raise InvalidArgumentError("demand: expected a list of models or a mapping with 'models:'")
    if not items:
        raise InvalidArgumentError("demand: no models listed")
    out: list[Demand] = []
    for name, entry in items:
        if not isinstance(entry, Mapping):
            raise InvalidArgumentError(f"demand: model {name}: expected a mapping with rate_rps and slo_ms")
        unknown = set(entry) - {"model", "rate_rps", "slo_ms", "min_accuracy"}
        if unknown:
            raise InvalidArgumentError(f"demand: model {name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        rate = _number(entry.get("rate_rps"), f"model {name}: rate_rps")
        slo = _number(entry.get("slo_ms"), f"model {name}: slo_ms")
        if rate < 0:
            raise InvalidArgumentError(f"demand: model {name}: rate_rps must be >= 0, got {rate:g}")
        if slo <= 0:
            raise InvalidArgumentError(f"demand: model {name}: slo_ms must be > 0, got {slo:g}")
        acc = entry.get("min_accuracy")
        out.append(Demand(name, rate, slo, None if acc is None else _number(acc, f"model {name}: min_accuracy")))
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise InvalidArgumentError(f"demand: {what} must be a number, got {value!r}")
    return float(value)


def parse_devices(spec: str) -> list[DeviceSpec]:
    devices: list[DeviceSpec] = []
    for term in (t.strip().lower() for t in spec.split(",")):
        match = _TERM.match(term)
        if not match:
            raise InvalidArgumentError(f"devices: cannot read {term!r}; expected e.g. gpu:4, mig:2@a100-80gb, cpu:16 or cpu:2x8")
        kind_name, first, second, model_key = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        if kind_name == "cpu":
            if model_key:
                raise InvalidArgumentError(f"devices: {term!r}: a CPU host has no GPU model")
            count, cores = (first, int(second)) if second else (1, first)
            if count < 1 or cores < 1:
                raise InvalidArgumentError(f"devices: {term!r} needs at least one host and one core")
            start = sum(1 for d in devices if d.kind is DeviceKind.CPU)
            devices += [DeviceSpec(f"cpu{start + i}", DeviceKind.CPU, cores, "host CPU") for i in range(count)]
            continue
        if second:
            raise InvalidArgumentError(f"devices: {term!r}: GPUs have a fixed size; write {kind_name}:{first}")
        if first < 1:
            raise InvalidArgumentError(f"devices: {term!r} needs at least one device")
        start = sum(1 for d in devices if d.kind is not DeviceKind.CPU)
        model = gpu_model(model_key or DEFAULT_GPU_MODEL)
        mem = int(model.memory_mb)
        if kind_name == "mig":
            if not model.mig:
                raise InvalidArgumentError(f"devices: {term!r}: the {model.name} has no MIG; use gpu:{first}@{model.key}")
            devices += [DeviceSpec(f"gpu{start + i}", DeviceKind.GPU_MIG, 7, f"{model.name} (MIG)", mem, model.key) for i in range(first)]
        else:
            devices += [DeviceSpec(f"gpu{start + i}", DeviceKind.GPU_MPS, 100, f"{model.name} (MPS)", mem, model.key) for i in range(first)]
    if len({d.kind for d in devices}) > 1:
        raise InvalidArgumentError("devices: a plan uses devices of one kind; got a mix")
    return devices


def profiles_from_data(data: Any) -> list[Profile]:
    if isinstance(data, Mapping) and "profiles" in data:
        data = data["profiles"]
    raw = list(data.values()) if isinstance(data, Mapping) else data
    if not isinstance(raw, list):
        raise InvalidArgumentError("profiles: expected a list of profiles")
    out: list[Profile] = []
    for i, entry in enumerate(raw):
        try:
            prof = Profile.from_json(entry)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise InvalidArgumentError(f"profiles: entry {i + 1} is not a profile ({type(exc).__name__}: {exc})") from None
        if not prof.points:
            raise InvalidArgumentError(f"profiles: model {prof.model} has no points")
        out.append(prof)
    return out
