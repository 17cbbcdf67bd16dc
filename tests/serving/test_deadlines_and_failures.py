"""Deadlines and worker failures against a live server (real processes)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SLOW_X = np.zeros((1, 1, 256, 256), dtype=np.float32)


def infer_slow(server: Any, timeout_us: int | None = None) -> tuple[int, dict[str, Any], float]:
    raw = SLOW_X.tobytes()
    doc: dict[str, Any] = {"inputs": [{"name": "x", "shape": [1, 1, 256, 256], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}]}
    if timeout_us is not None:
        doc["parameters"] = {"timeout": timeout_us}
    head = json.dumps(doc).encode()
    req = urllib.request.Request(
        f"http://{server.http_url}/v2/models/slow/infer",
        data=head + raw,
        method="POST",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            n = int(r.headers.get("Inference-Header-Content-Length") or len(body))
            return r.status, json.loads(body[:n]), time.perf_counter()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), time.perf_counter()


def slow_latency_s(server: Any) -> float:
    for _ in range(3):  # warm up and let the worker measure itself
        infer_slow(server)
    t0 = time.perf_counter()
    infer_slow(server)
    return time.perf_counter() - t0


def test_unreachable_deadline_is_rejected_quickly(server: Any) -> None:
    lat = slow_latency_s(server)
    with cf.ThreadPoolExecutor(8) as pool:
        backlog = [pool.submit(infer_slow, server) for _ in range(6)]  # the worker is busy
        time.sleep(lat / 2)
        t0 = time.perf_counter()
        # earliest-deadline-first would put it at the head, but even there it cannot finish in time
        status, doc, t_done = infer_slow(server, timeout_us=int(lat * 0.5e6))
        assert status == 503, doc
        assert "deadline cannot be met" in doc["error"]
        assert t_done - t0 < lat  # answered before it could even have run
        assert all(f.result()[0] == 200 for f in backlog)


def test_full_queue_completes_in_deadline_order(server: Any) -> None:
    lat = slow_latency_s(server)
    n = 6
    with cf.ThreadPoolExecutor(2 * n) as pool:
        # keep the worker busy with earlier-deadline requests while the rest queue up
        head = [pool.submit(infer_slow, server, int((10 + i) * lat * 1e6)) for i in range(n)]
        time.sleep(lat / 2)
        # then submit in reverse deadline order, all generous enough to be met
        timeouts = [int((20 + 2 * (n - i)) * lat * 1e6) for i in range(n)]
        futures = []
        for t in timeouts:
            futures.append(pool.submit(infer_slow, server, t))
            time.sleep(0.002)
        results = [f.result() for f in futures]
        assert all(h.result()[0] == 200 for h in head)
    assert all(r[0] == 200 for r in results), results
    done_order = sorted(range(n), key=lambda i: results[i][2])
    by_deadline = sorted(range(n), key=lambda i: timeouts[i])
    assert done_order == by_deadline


def _status(server: Any) -> dict[str, Any]:
    return server.get_json("/v2/status")  # type: ignore[no-any-return]


def _slow_slice(server: Any) -> dict[str, Any]:
    status = _status(server)
    (slice_id,) = status["models"]["slow"]["slices"]
    return next(s for s in status["slices"] if s["slice_id"] == slice_id)  # type: ignore[no-any-return]


def test_kill_worker_under_load(server: Any) -> None:
    pid = _slow_slice(server)["worker"]["pid"]
    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(infer_slow, server) for _ in range(16)]
        time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        results = [f.result(timeout=60) for f in futures]  # every request answered, no hang
    codes = [r[0] for r in results]
    assert set(codes) <= {200, 503}, results
    # the kill landed on work in flight: the request the worker was running is answered 503 naming
    # the exit, and the requests queued behind it (no deadline) are served by the restarted worker
    assert any(r[0] == 503 and "exited" in r[1]["error"] for r in results), results
    assert 200 in codes, results
    for r in results:
        if r[0] == 503:
            assert "exited" in r[1]["error"] or "deadline" in r[1]["error"]
    # restarted, and later requests succeed
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        worker = _slow_slice(server)["worker"]
        if worker["alive"] and worker["pid"] != pid:
            break
        time.sleep(0.2)
    status, _, _ = infer_slow(server)
    assert status == 200
    assert _slow_slice(server)["restarts"] >= 1


def test_worker_that_cannot_restart_answers_everything(tmp_path: Any) -> None:
    """A worker that dies and cannot come back (its model file is gone): queued requests and new
    ones get a 503 naming the cause, nothing hangs; once the file is back it recovers."""
    import shutil
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
    import models as test_models
    from server import start_server

    repo = tmp_path / "repo"
    test_models.slow_conv(repo / "slow" / "1" / "model.onnx")
    test_models.add_config_yaml(repo / "slow", "max_batch_size: 1\n")
    srv = start_server(repo, tmp_path / "state")
    try:
        pid = _slow_slice(srv)["worker"]["pid"]
        model_file = repo / "slow" / "1" / "model.onnx"
        shutil.move(str(model_file), str(tmp_path / "saved.onnx"))
        with cf.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(infer_slow, srv) for _ in range(8)]
            time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            results = [f.result(timeout=60) for f in futures]
        assert {r[0] for r in results} <= {200, 503}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _slow_slice(srv)["failing"]:
            time.sleep(0.1)
        status, doc, _ = infer_slow(srv)
        assert status == 503 and "cannot be restarted" in doc["error"]
        shutil.move(str(tmp_path / "saved.onnx"), str(model_file))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _slow_slice(srv)["failing"]:
            time.sleep(0.2)
        assert infer_slow(srv)[0] == 200
    finally:
        srv.stop()
