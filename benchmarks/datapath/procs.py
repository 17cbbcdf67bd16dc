"""Per-process CPU accounting and the load generator's own process for benchmarks/datapath."""

from __future__ import annotations

import asyncio
import os
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

MODEL = "small_cnn"  # the model every datapath benchmark serves (small_cnn.py)


class Stats(Protocol):
    """What a served model's statistics are read through (tests/support's RunningServer)."""

    def get_json(self, path: str) -> Any: ...


def answered(srv: Stats) -> int:
    """Requests the server says it answered successfully so far (its statistics extension)."""
    stats = srv.get_json(f"/v2/models/{MODEL}/stats")["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds so far of each group of processes (gone ones count 0)."""
    out: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


def load_process(conn: Connection, target: dict[str, object], client: str, conc: int,
                 duration_s: float, warmup_s: float, x: np.ndarray) -> None:
    """Run one closed-loop point in this (spawned) process and send back its summary."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    import loadgen

    async def run() -> dict[str, float]:
        host, port, model = str(target["host"]), int(target["port"]), str(target["model"])  # type: ignore[call-overload]
        path = f"/v2/models/{model}/infer"
        grpc_clients = {"grpc": loadgen.grpc_callers, "grpc-lean": loadgen.grpc_lean_callers, "grpc-stream": loadgen.grpc_stream_callers}
        if client in grpc_clients:
            make = grpc_clients[client]
            calls = await make(str(target["grpc"]), model, "input", x, "FP32", conc)
        else:
            if client == "http-binary":
                body, hlen = loadgen.infer_body_binary("input", x)
                raw = loadgen.http_request(host, port, path, body, hlen)
            else:
                raw = loadgen.http_request(host, port, path, loadgen.infer_body_json("input", x, binary_output=False))
            calls = await loadgen.http_callers(host, port, raw, conc)
        res = await loadgen.closed_loop(calls, duration_s, warmup_s)
        return res.summary()

    conn.send(asyncio.run(run()))
    conn.close()
