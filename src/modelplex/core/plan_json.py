"""A plan from JSON (what `modelplex plan` writes and `POST /v2/plan` takes), each field checked
for its kind; a bad one is an InvalidArgumentError naming it, e.g. `slices[3].cpus[0]`.
Ranges (batch >= 1, shares in (0, 1], ...) are the plan checks' business (planning/)."""

from __future__ import annotations

from collections.abc import Mapping

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan

_MISSING = object()


def _bad(path: str, want: str, value: object) -> InvalidArgumentError:
    shown = repr(value)
    return InvalidArgumentError(f"{path}: must be {want}, got {shown if len(shown) <= 40 else shown[:40] + '...'}")


def _field(obj: Mapping[str, object], path: str, key: str, default: object = _MISSING) -> object:
    if key in obj:
        return obj[key]
    if default is _MISSING:
        raise InvalidArgumentError(f"{path}.{key}: missing" if path else f"{key}: missing")
    return default


def _obj(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise _bad(path or "plan", "an object", value)
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise _bad(path, "a list", value)
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, "a string", value)
    return value


def _int(value: object, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(path, "an integer", value)
    return value


def _num(value: object, path: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _bad(path, "a number", value)
    return float(value)


def _device(raw: object, path: str) -> DeviceSpec:
    d = _obj(raw, path)
    kind = _str(_field(d, path, "kind"), f"{path}.kind")
    try:
        device_kind = DeviceKind(kind)
    except ValueError:
        raise _bad(f"{path}.kind", "one of " + ", ".join(k.value for k in DeviceKind), kind) from None
    return DeviceSpec(
        device_id=_str(_field(d, path, "device_id"), f"{path}.device_id"),
        kind=device_kind,
        capacity=_int(_field(d, path, "capacity"), f"{path}.capacity"),
        name=_str(_field(d, path, "name", ""), f"{path}.name"),
        memory_mb=_int(_field(d, path, "memory_mb", 0), f"{path}.memory_mb"),
        gpu_model=_str(_field(d, path, "gpu_model", ""), f"{path}.gpu_model"),
    )


def _assignment(raw: object, path: str) -> ModelAssignment:
    a = _obj(raw, path)
    return ModelAssignment(
        model=_str(_field(a, path, "model"), f"{path}.model"),
        batch=_int(_field(a, path, "batch"), f"{path}.batch"),
        rate_rps=_num(_field(a, path, "rate_rps"), f"{path}.rate_rps"),
        share=_num(_field(a, path, "share"), f"{path}.share"),
        latency_ms=_num(_field(a, path, "latency_ms"), f"{path}.latency_ms"),
    )


def _slice(raw: object, path: str) -> SlicePlan:
    s = _obj(raw, path)
    cpus = _list(_field(s, path, "cpus", []), f"{path}.cpus")
    assignments = _list(_field(s, path, "assignments"), f"{path}.assignments")
    return SlicePlan(
        slice_id=_str(_field(s, path, "slice_id"), f"{path}.slice_id"),
        slice=SliceSpec(
            device_id=_str(_field(s, path, "device_id"), f"{path}.device_id"),
            size=_int(_field(s, path, "size"), f"{path}.size"),
            cpus=tuple(_int(c, f"{path}.cpus[{i}]") for i, c in enumerate(cpus)),
            mig_start=_int(_field(s, path, "mig_start", -1), f"{path}.mig_start"),
        ),
        processes=_int(_field(s, path, "processes", 1), f"{path}.processes"),
        memory_mb=_num(_field(s, path, "memory_mb", 0.0), f"{path}.memory_mb"),
        duty_cycle_ms=_num(_field(s, path, "duty_cycle_ms"), f"{path}.duty_cycle_ms"),
        utilisation=_num(_field(s, path, "utilisation"), f"{path}.utilisation"),
        assignments=tuple(_assignment(a, f"{path}.assignments[{j}]") for j, a in enumerate(assignments)),
    )


def plan_from_json(data: object) -> Plan:
    """The plan `data` describes; InvalidArgumentError naming the first field of the wrong kind."""
    doc = _obj(data, "")
    devices = _list(_field(doc, "", "devices"), "devices")
    slices = _list(_field(doc, "", "slices"), "slices")
    unserved = _obj(_field(doc, "", "unserved", {}), "unserved")
    return Plan(
        policy=_str(_field(doc, "", "policy"), "policy"),
        devices=tuple(_device(d, f"devices[{i}]") for i, d in enumerate(devices)),
        slices=tuple(_slice(s, f"slices[{i}]") for i, s in enumerate(slices)),
        unserved={str(k): _num(v, f"unserved.{k}") for k, v in unserved.items()},
    )
