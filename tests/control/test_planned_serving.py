"""Serving under a plan, against a live server (real processes, real sockets)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import concurrent.futures as cf
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import psutil
import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from planned import start_planned, two_model_repository  # noqa: E402
from server import RunningServer  # noqa: E402

pytestmark = pytest.mark.slow
CPU = DeviceSpec("cpu0", DeviceKind.CPU, 2)


def plan_split() -> Plan:
    """mlp and cnn each on a 1-core slice of their own."""
    return Plan(
        "test-split",
        (CPU,),
        (
            SlicePlan("cpu0/a", SliceSpec("cpu0", 1, (0,)), (ModelAssignment("mlp", 8, 50.0, 1.0, 1.0),), 0.0, 0.1),
            SlicePlan("cpu0/b", SliceSpec("cpu0", 1, (1,)), (ModelAssignment("cnn", 4, 50.0, 1.0, 2.0),), 0.0, 0.1),
        ),
    )


def plan_segment() -> Plan:
    """mlp on one core; cnn on the other as a segment of two worker processes."""
    return Plan(
        "test-segment",
        (CPU,),
        (
            SlicePlan("cpu0/a", SliceSpec("cpu0", 1, (0,)), (ModelAssignment("mlp", 8, 50.0, 1.0, 1.0),), 0.0, 0.1),
            SlicePlan("cpu0/b", SliceSpec("cpu0", 1, (1,)), (ModelAssignment("cnn", 4, 50.0, 1.0, 2.0),), 0.0, 0.1, processes=2),
        ),
    )


def plan_shared() -> Plan:
    """Both models time-sharing one 2-core slice."""
    return Plan(
        "test-shared",
        (CPU,),
        (
            SlicePlan(
                "cpu0/s",
                SliceSpec("cpu0", 2, (0, 1)),
                (ModelAssignment("mlp", 4, 50.0, 1.0, 1.0), ModelAssignment("cnn", 2, 50.0, 1.0, 2.0)),
                10.0,
                0.2,
            ),
        ),
    )


@pytest.fixture(scope="module")
def planned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("planned")
    srv, _ = start_planned(root, two_model_repository(root))
    yield srv
    srv.stop()


def _post_plan(srv: RunningServer, plan: Plan) -> dict[str, Any]:
    status, doc = srv.post_json("/v2/plan", json.dumps(plan.to_json()).encode())
    assert status == 200, doc
    return doc


def _infer(srv: RunningServer, model: str) -> int:
    shape = [1, 64] if model == "mlp" else [1, 3, 32, 32]
    body = json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": np.zeros(shape).ravel().tolist()}]})
    status, _ = srv.request(f"/v2/models/{model}/infer", body.encode())
    return status


def _worker_pids(srv: RunningServer) -> set[int]:
    return {
        c.pid
        for c in psutil.Process(srv.proc.pid).children(recursive=True)
        if any("modelplex.runtime.worker" in part for part in c.cmdline())
    }


def _wait_for(cond: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _agrees(srv: RunningServer, plan: Plan) -> None:
    doc = srv.get_json("/v2/plan")
    assert doc["plan"]["policy"] == plan.policy
    want = sorted((tuple(s.slice.cpus), tuple(a.model for a in s.assignments)) for s in plan.slices)
    got = sorted((tuple(s["cpus"]), tuple(s["models"])) for s in doc["slices"])
    assert got == want
    pids = {pid for s in doc["slices"] for pid in s["worker"]["pids"]}
    assert [len(s["worker"]["pids"]) for s in doc["slices"]] == [s["processes"] for s in doc["slices"]]
    assert all(s["worker"]["alive"] for s in doc["slices"])
    _wait_for(lambda: _worker_pids(srv) == pids)  # exactly the workers it names; old ones gone


def test_initial_plan_is_served_and_status_agrees(planned_server: RunningServer) -> None:
    doc = planned_server.get_json("/v2/plan")
    assert doc["plan"]["policy"] == "elastic"
    assert doc["controller"]["policy"] == "elastic"
    assert _infer(planned_server, "mlp") == 200 and _infer(planned_server, "cnn") == 200
    plan = Plan.from_json(doc["plan"])
    _agrees(planned_server, plan)
    slices = {s["slice_id"] for s in doc["slices"]}
    assert len(slices) == len(plan.slices)
    # both models fit on one core at 20 req/s: the plan leaves core 0 to the frontend
    frontend = doc["controller"]["frontend"]
    assert frontend["kept_cores"] == [0] and frontend["us_per_request"] > 0
    assert all(0 not in s["cpus"] for s in doc["slices"])


def test_applying_a_plan_starts_exactly_its_workers(planned_server: RunningServer) -> None:
    for plan in (plan_split(), plan_shared(), plan_split(), plan_segment()):
        result = _post_plan(planned_server, plan)
        assert result["applied"] and result["slices"] == len(plan.slices)
        _agrees(planned_server, plan)
    # from plan_split to plan_segment: mlp's slice is the same and kept, cnn's gets two processes
    assert (result["kept"], result["started"], result["drained"]) == (1, 1, 1)
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _: _infer(planned_server, "cnn"), range(32))) == [200] * 32


def test_switching_plans_under_steady_load_loses_nothing(planned_server: RunningServer) -> None:
    stop = threading.Event()
    codes: list[int] = []

    def load(model: str) -> None:
        while not stop.is_set():
            codes.append(_infer(planned_server, model))

    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load, m) for m in ("mlp", "cnn", "mlp", "cnn")]
        time.sleep(0.3)
        for plan in (plan_shared(), plan_split(), plan_shared(), plan_split()):
            _post_plan(planned_server, plan)
            time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()
    assert len(codes) > 50
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}


def test_killed_worker_is_restarted_on_its_slice(planned_server: RunningServer) -> None:
    _post_plan(planned_server, plan_split())
    before = {s["slice_id"]: s for s in planned_server.get_json("/v2/plan")["slices"]}
    victim = next(s for s in before.values() if s["models"] == ["cnn"])
    os.kill(victim["worker"]["pid"], signal.SIGKILL)

    def restarted() -> bool:
        now = {s["slice_id"]: s for s in planned_server.get_json("/v2/plan")["slices"]}
        s = now[victim["slice_id"]]
        return bool(s["worker"]["alive"]) and s["worker"]["pid"] != victim["worker"]["pid"] and s["restarts"] >= 1

    _wait_for(restarted)
    after = next(s for s in planned_server.get_json("/v2/plan")["slices"] if s["slice_id"] == victim["slice_id"])
    assert after["cpus"] == victim["cpus"]
    assert _infer(planned_server, "cnn") == 200


def test_bad_plans_are_refused(planned_server: RunningServer) -> None:
    bad = Plan("bad", (CPU,), (SlicePlan("x", SliceSpec("cpu0", 1, (5,)), (ModelAssignment("mlp", 1, 1.0, 1.0, 1.0),), 0.0, 0.0),))
    unknown = Plan("bad", (CPU,), (SlicePlan("x", SliceSpec("cpu0", 1, (0,)), (ModelAssignment("nope", 1, 1.0, 1.0, 1.0),), 0.0, 0.0),))
    for plan, needle in ((bad, "cores"), (unknown, "nope")):
        status, doc = planned_server.post_json("/v2/plan", json.dumps(plan.to_json()).encode())
        assert status == 400
        assert needle in doc["error"]
    status, _ = planned_server.post_json("/v2/plan", b"{not json")
    assert status == 400


def test_status_cli_prints_the_plan(planned_server: RunningServer) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "status", "--url", f"http://{planned_server.http_url}"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "policy:" in out.stdout and "cnn" in out.stdout and "in slo" in out.stdout


def test_status_cli_unreachable_server_is_one_line() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "status", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "cannot reach" in out.stderr
