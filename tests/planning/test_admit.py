"""Plans posted to a server: the pure checks name the field at fault; Plan.from_json names the
first malformed field instead of raising KeyError/TypeError/AssertionError."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning.admit import MAX_PROCESSES_PER_SLICE, HostShape, admit_problems

HOST = HostShape(cores=4, gpu_ids=(), max_batch={"mlp": 8, "cnn": 16, "single": 0})
GPU_HOST = HostShape(cores=4, gpu_ids=("gpu0",), max_batch={"mlp": 8, "cnn": 16})


def _slice(i: int, cpus: list[int], model: str = "mlp") -> dict[str, Any]:
    return {"slice_id": f"cpu0/s{i}", "device_id": "cpu0", "size": len(cpus), "cpus": cpus, "processes": 1,
            "memory_mb": 0.0, "duty_cycle_ms": 0.0, "utilisation": 0.5,
            "assignments": [{"model": model, "batch": 4, "rate_rps": 10.0, "share": 1.0, "latency_ms": 2.0}]}


def good() -> dict[str, Any]:
    return {"policy": "test", "devices": [{"device_id": "cpu0", "kind": "cpu", "capacity": 4}],
            "slices": [_slice(0, [0, 1]), _slice(1, [2], "cnn")], "unserved": {}}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a field by a path like 'slices.1.assignments.0.batch'."""

    def edit(doc: dict[str, Any]) -> None:
        *parts, last = path.split(".")
        target: Any = doc
        for p in parts:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value

    return edit


def _append_slices(*slices: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc["slices"].extend(slices)


def _many_slices(n: int) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.update(slices=[_slice(i, [i % 4]) for i in range(n)])


def _gpu_slice(device: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["devices"].append({"device_id": device, "kind": "gpu-mps", "capacity": 100})
        doc["slices"].append(dict(_slice(9, []), slice_id=f"{device}/s0", device_id=device, size=50, cpus=[]))

    return edit


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_set("slices.1.assignments.0.batch", 0), "slices[1].assignments[0].batch: must be at least 1, got 0"),
        (_set("slices.0.assignments.0.batch", 9), "slices[0].assignments[0].batch: must be at most 8 (model mlp's max_batch_size)"),
        (_set("slices.0.assignments.0.model", "single"), "must be at most 1 (model single's"),
        (_set("slices.0.assignments.0.share", -0.5), "slices[0].assignments[0].share: must be in (0, 1], got -0.5"),
        (_set("slices.0.assignments.0.share", 0), "share: must be in (0, 1]"),
        (_set("slices.0.assignments.0.share", 1.5), "share: must be in (0, 1]"),
        (_set("slices.0.assignments.0.rate_rps", -1), "slices[0].assignments[0].rate_rps: must be a finite number >= 0"),
        (_set("slices.0.assignments.0.rate_rps", 1e400), "rate_rps: must be a finite number >= 0, got inf"),
        (_set("slices.0.assignments.0.latency_ms", float("nan")), "latency_ms: must be a finite number >= 0"),
        (_set("slices.0.assignments.0.model", "nope"), "slices[0].assignments[0].model: this server has no model 'nope'"),
        (_set("slices.0.cpus", [0, 7]), "slices[0].cpus[1]: core 7 does not exist, this server has 4 cores (0..3)"),
        (_set("slices.0.cpus", [-1]), "core -1 does not exist"),
        (_set("slices.0.cpus", [2]), "slices[1].cpus[0]: core 2 is also used by slices[0]"),
        (_set("slices.0.cpus", [0, 0]), "slices[0].cpus[1]: core 0 is listed twice"),
        (_set("slices.0.cpus", []), "slices[1].cpus[0]: core 2 is also used by slices[0]"),
        (_many_slices(5), "slices: 5 CPU slices, this server has 4 cores (at most one slice per core)"),
        (_many_slices(200), "200 CPU slices"),
        (_set("slices.0.processes", 0), f"slices[0].processes: must be 1..{MAX_PROCESSES_PER_SLICE}, got 0"),
        (_set("slices.0.processes", 500), "processes: must be 1.."),
        (_set("slices.0.assignments", []), "slices[0].assignments: a slice needs at least one model"),
        (_set("slices.0.size", 0), "slices[0].size: must be at least 1"),
        (_set("slices.0.duty_cycle_ms", -1), "slices[0].duty_cycle_ms: must be a finite number >= 0"),
        (_set("slices.1.slice_id", "cpu0/s0"), "slices[1].slice_id: 'cpu0/s0' is also the id of slices[0]"),
        (_set("slices.0.device_id", "cpu9"), "slices[0].device_id: 'cpu9' is not one of the plan's devices"),
        (_set("slices", []), "slices: a plan needs at least one slice"),
        (_set("unserved", {"mlp": -3}), "unserved.mlp: must be a finite number >= 0"),
        (_set("devices.0.capacity", 0), "devices[0].capacity: must be at least 1"),
        (_set("devices.0.device_id", "gpu0"), "a cpu device may not be called 'gpu0'"),
        (_append_slices(dict(_slice(2, [3]), assignments=[_slice(0, [0])["assignments"][0]] * 2)), "is already assignments[0]"),
        (_gpu_slice("gpu0"), "this server plans no GPUs (start it with --gpus)"),
    ],
)
def test_plan_problems_name_the_field(edit: Callable[[dict[str, Any]], None], needle: str) -> None:
    doc = good()
    edit(doc)
    problems = admit_problems(Plan.from_json(doc), HOST)
    assert any(needle in p for p in problems), problems


def test_a_good_plan_has_no_problems() -> None:
    assert admit_problems(Plan.from_json(good()), HOST) == []
    seg = good()
    seg["slices"][1]["processes"] = 2  # a segment: one model, two processes on one core
    assert admit_problems(Plan.from_json(seg), HOST) == []
    one = good()
    one["slices"] = [dict(_slice(0, []), size=4)]  # no cores named: the slice takes every core
    assert admit_problems(Plan.from_json(one), HOST) == []


def test_gpu_devices_must_exist() -> None:
    doc = good()
    _gpu_slice("gpu0")(doc)
    assert admit_problems(Plan.from_json(doc), GPU_HOST) == []
    doc = good()
    _gpu_slice("gpu3")(doc)
    assert any("devices[1].device_id: no GPU 'gpu3' on this server (it has gpu0)" in p for p in admit_problems(Plan.from_json(doc), GPU_HOST))
    doc = good()
    _gpu_slice("gpu0")(doc)
    doc["slices"].append(dict(doc["slices"][-1], slice_id="gpu0/s1", size=60))
    assert any("take 110, more than its capacity 100" in p for p in admit_problems(Plan.from_json(doc), GPU_HOST))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_set("slices.0.assignments.0.batch", "4"), "slices[0].assignments[0].batch: must be an integer, got '4'"),
        (_set("slices.0.assignments.0.batch", 1.5), "batch: must be an integer, got 1.5"),
        (_set("slices.0.assignments.0.batch", True), "batch: must be an integer, got True"),
        (_set("slices.0.assignments.0.share", None), "slices[0].assignments[0].share: must be a number, got None"),
        (_set("slices.0.cpus", [0, "a"]), "slices[0].cpus[1]: must be an integer"),
        (_set("slices.0.cpus", 3), "slices[0].cpus: must be a list"),
        (_set("slices.0.assignments", {"model": "mlp"}), "slices[0].assignments: must be a list"),
        (_set("slices.0.assignments.0", 7), "slices[0].assignments[0]: must be an object"),
        (_set("slices.1", "x"), "slices[1]: must be an object"),
        (_set("devices.0.kind", "tpu"), "devices[0].kind: must be one of cpu, gpu-mps, gpu-mig"),
        (_set("policy", 5), "policy: must be a string"),
        (_set("unserved", []), "unserved: must be an object"),
        (lambda doc: doc["slices"][0]["assignments"][0].pop("batch"), "slices[0].assignments[0].batch: missing"),
        (lambda doc: doc.pop("devices"), "devices: missing"),
        (lambda doc: doc.pop("slices"), "slices: missing"),
    ],
)
def test_from_json_names_the_malformed_field(edit: Callable[[dict[str, Any]], None], needle: str) -> None:
    doc = copy.deepcopy(good())
    edit(doc)
    with pytest.raises(InvalidArgumentError) as err:
        Plan.from_json(doc)
    assert needle in err.value.message


@pytest.mark.parametrize("doc", [[], "plan", 5, None])
def test_from_json_refuses_non_objects(doc: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="plan: must be an object"):
        Plan.from_json(doc)


def test_round_trip() -> None:
    plan = Plan.from_json(good())
    assert Plan.from_json(plan.to_json()) == plan
