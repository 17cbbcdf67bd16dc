"""The plan diff: which slices start, load, stay, drain and stop; how traffic is routed."""

from __future__ import annotations

import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.planning.diff import DrainSlice, KeepSlice, LoadModel, Route, StartSlice, StopSlice, diff

CPU = DeviceSpec("cpu0", DeviceKind.CPU, 4)


def sl(sid: str, cpus: tuple[int, ...], *assign: tuple[str, int, float]) -> SlicePlan:
    return SlicePlan(sid, SliceSpec("cpu0", len(cpus), cpus), tuple(ModelAssignment(m, b, 1.0, s, 1.0) for m, b, s in assign), 0.0, 0.5)


def plan(*slices: SlicePlan) -> Plan:
    return Plan("test", (CPU,), slices)


A = sl("cpu0/s0", (0,), ("a", 4, 1.0))
B = sl("cpu0/s1", (1,), ("b", 4, 1.0))
B8 = sl("cpu0/s1", (1,), ("b", 8, 1.0))  # same cores, other batch: a different slice
AB = sl("cpu0/s2", (2, 3), ("a", 2, 0.5), ("b", 2, 0.5))


@pytest.mark.parametrize(
    "running, new, start, keep, drain",
    [
        (None, plan(A, B), ["cpu0/s0", "cpu0/s1"], [], []),  # nothing runs: everything starts
        (plan(A, B), plan(A, B), [], [("cpu0/s0", "cpu0/s0"), ("cpu0/s1", "cpu0/s1")], []),  # same plan: no worker changes
        (plan(A, B), plan(A, B8), ["cpu0/s1"], [("cpu0/s0", "cpu0/s0")], ["cpu0/s1"]),  # a new batch size restarts one
        (plan(A, B), plan(AB), ["cpu0/s2"], [], ["cpu0/s0", "cpu0/s1"]),  # a new layout
    ],
)
def test_diff_table(running: Plan | None, new: Plan, start: list[str], keep: list[tuple[str, str]], drain: list[str]) -> None:
    d = diff(running, new)
    assert [s.slice_id for s in d.start] == start
    assert [(k.slice_id, k.running_id) for k in d.keep] == keep
    assert [x.running_id for x in d.drain] == drain == [x.running_id for x in d.stop]
    assert d.changes_workers == bool(start or drain)


def test_loads_routes_and_action_order() -> None:
    d = diff(plan(A, B), plan(A, AB))
    assert d.models_on("cpu0/s2") == [LoadModel("cpu0/s2", "a", 2), LoadModel("cpu0/s2", "b", 2)]
    assert set(d.route) == {Route("a", (("cpu0/s0", 1.0), ("cpu0/s2", 0.5))), Route("b", (("cpu0/s2", 0.5),))}
    kinds = [type(a) for a in d.actions]
    order = [StartSlice, LoadModel, KeepSlice, Route, DrainSlice, StopSlice]
    assert kinds == sorted(kinds, key=order.index)  # start and load, then switch, then drain and stop
