"""System shared memory against binary HTTP on a 4 MB input (and a 4 MB output), one run each,
side by side: throughput and latency of an identity model over FP32 [1, 1048576].

    PYTHONPATH=src .venv/bin/python benchmarks/shm_vs_binary.py [--duration 5] [--concurrency 1,2]

Binary HTTP sends the input after the JSON header and gets the output back the same way; shared
memory sends a small JSON body naming a region per caller for the input and one for the output
(written by the server, read back by the client from its own memory). Same server, same model,
same keep-alive load generator (benchmarks/loadgen.py). Writes benchmarks/results/shm_vs_binary.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import uuid
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

import loadgen  # noqa: E402
from models import identity_fp32  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

log = logging.getLogger("shm_vs_binary")
WIDTH = 1 << 20  # FP32 elements: 4 MB
NBYTES = WIDTH * 4
PATH = "/v2/models/big/infer"


def _shm_body(i: int) -> bytes:
    params = {"shared_memory_region": f"in{i}", "shared_memory_byte_size": NBYTES}
    out = {"shared_memory_region": f"out{i}", "shared_memory_byte_size": NBYTES}
    return orjson.dumps({"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32", "parameters": params}],
                         "outputs": [{"name": "y", "parameters": out}]})


def _regions(srv: RunningServer, n: int, x: np.ndarray) -> list[shared_memory.SharedMemory]:
    """One object per caller: input in its first half, output in its second; both registered."""
    mems = [shared_memory.SharedMemory(name=f"mp_bench_{uuid.uuid4().hex[:8]}", create=True, size=2 * NBYTES)
            for _ in range(n)]
    try:
        for i, mem in enumerate(mems):
            mem.buf[:NBYTES] = x.tobytes()
            for name, offset in ((f"in{i}", 0), (f"out{i}", NBYTES)):
                body = orjson.dumps({"key": "/" + mem.name, "offset": offset, "byte_size": NBYTES})
                status, doc = srv.post_json(f"/v2/systemsharedmemory/region/{name}/register", body)
                if status != 200:
                    raise RuntimeError(f"register {name}: {doc} (is this checkout's src first on PYTHONPATH?)")
    except BaseException:
        for mem in mems:
            mem.close()
            mem.unlink()
        raise
    return mems


async def _run(srv: RunningServer, raws: list[bytes], duration_s: float) -> dict[str, float]:
    host, port = "127.0.0.1", srv.http_port
    calls = []
    for raw in raws:
        calls.extend(await loadgen.http_callers(host, port, raw, 1))
    summary = (await loadgen.closed_loop(calls, duration_s)).summary()
    summary["MB_per_s_in"] = summary["rps"] * NBYTES / 2**20
    return summary


def bench(srv: RunningServer, duration_s: float, concurrency: list[int]) -> list[dict[str, Any]]:
    x = np.random.default_rng(0).standard_normal((1, WIDTH)).astype(np.float32)
    body, hlen = loadgen.infer_body_binary("x", x)
    binary_raw = loadgen.http_request("127.0.0.1", srv.http_port, PATH, body, hlen)
    mems = _regions(srv, max(concurrency), x)
    rows: list[dict[str, Any]] = []
    try:
        shm_raws = [loadgen.http_request("127.0.0.1", srv.http_port, PATH, _shm_body(i)) for i in range(len(mems))]
        status, _ = srv.request(PATH, _shm_body(0))
        got = np.frombuffer(mems[0].buf[NBYTES:], dtype=np.float32).copy()
        if status != 200 or not np.array_equal(got, x.reshape(-1)):
            raise RuntimeError("shared-memory output differs from the input")
        for n in concurrency:
            for mode, raws in (("binary HTTP", [binary_raw] * n), ("shared memory", shm_raws[:n])):
                row = {"mode": mode, "concurrency": n, **asyncio.run(_run(srv, raws, duration_s))}
                rows.append(row)
                log.info("%s", row)
    finally:
        srv.post_json("/v2/systemsharedmemory/unregister", b"")
        for mem in mems:
            mem.close()
            mem.unlink()
    return rows


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per row (default 5)")
    ap.add_argument("--concurrency", default="1,2", help="requests in flight (default 1,2)")
    args = ap.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="modelplex-shm-") as tmp:
        identity_fp32(Path(tmp) / "models" / "big" / "1" / "model.onnx", width=WIDTH)
        (Path(tmp) / "models" / "big" / "config.yaml").write_text("max_batch_size: 1\n")
        srv = start_server(Path(tmp) / "models", Path(tmp) / "state", ["--cpus", "0-1"])  # as measured in benchmarks/README.md
        try:
            rows = bench(srv, args.duration, concurrency)
        finally:
            srv.stop()
    log.info("\n| input 4 MB FP32, output 4 MB | in flight | req/s | MB/s in | p50 ms | p99 ms | errors |")
    log.info("|---|---|---|---|---|---|---|")
    for r in rows:
        log.info("| %s | %d | %.1f | %.0f | %.2f | %.2f | %d |", r["mode"], r["concurrency"], r["rps"], r["MB_per_s_in"],
                 r["p50_ms"], r["p99_ms"], r["errors"])
    out = HERE / "results" / "shm_vs_binary.json"
    out.write_text(json.dumps({"rows": rows, "cores": len(os.sched_getaffinity(0))}, indent=1) + "\n")
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
