"""What the 0.80 target leaves for a server on this machine, and what the cheapest Python server
costs: the floor under any frontend written in Python, with and without process isolation.

    .venv/bin/python benchmarks/datapath/floor.py [--duration 5] [--rounds 3]

Each round measures, on the small CNN (small_cnn.py), binary tensors, 32 requests in flight:
- in-process ONNX Runtime, two callers on one-thread sessions (the target's baseline), and ONNX
  Runtime's CPU per image in batches of 8 on one thread (what a worker spends at best);
- `bare (fixed answer)`: the cheapest HTTP server Python can run here: uvloop, httptools, one
  fixed answer, no routing, no data plane, no model;
- `bare (model on two threads)`: the same server running the model in its own process, handed
  to two threads with one-thread sessions (no worker process, no batching, no statistics, no
  deadlines);
- `bare (model on the loop, two processes)`: two such servers on one port (SO_REUSEPORT), each
  running the model on its event loop as each request completes: no hand-off at all, what is
  left when isolation and every feature are dropped;
- modelplex with default settings.
The load generator (`http-binary`) is its own process on the same two cores, as in run.py. The
budget is what the whole machine may spend per request outside ONNX Runtime at 0.80 of the
in-process rate: 2 cores / (0.8 × in-process req/s) − ONNX Runtime's CPU per image in batches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1] / "src")]

import numpy as np  # noqa: E402

from grpc_servers import wait_for_port  # noqa: E402
from modelplex.bench.target import free_port  # noqa: E402
from run import X, measure_point, serve_points, write_repo  # noqa: E402
from run_serving import in_process  # noqa: E402
from floor_table import FIXED, budget_us, table  # noqa: E402

CONCURRENCY = 32
_OUT_HEAD = json.dumps({"model_name": "small_cnn", "outputs": [
    {"name": "logits", "datatype": "FP32", "shape": [1, 10], "parameters": {"binary_data_size": 40}}]}).encode()


def _response(out: bytes) -> bytes:
    body = _OUT_HEAD + out
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
            b"inference-header-content-length: %d\r\ncontent-length: %d\r\n\r\n" % (len(_OUT_HEAD), len(body))) + body


def _bare_server(port: int, model_path: str | None, on_loop: bool) -> None:
    """uvloop + httptools; answers every request, fixed (no model) or from the model (on the
    event loop, or on two threads)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httptools
    import onnxruntime as ort
    import uvloop

    fixed = _response(np.zeros(10, np.float32).tobytes())
    local = threading.local()
    pool = ThreadPoolExecutor(2)

    def infer(body: bytes) -> bytes:
        if not hasattr(local, "sess"):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            local.sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        x = np.frombuffer(body, np.float32, 3 * 32 * 32, len(body) - 3 * 32 * 32 * 4).reshape(1, 3, 32, 32)
        return _response(local.sess.run(None, {"input": x})[0].tobytes())

    class Conn(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.parser = httptools.HttpRequestParser(self)
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, chunk: bytes) -> None:
            self.body.append(chunk)

        def on_message_complete(self) -> None:
            body, self.body = b"".join(self.body), []
            if model_path is None:
                self.transport.write(fixed)
            elif on_loop:
                self.transport.write(infer(body))
            else:
                fut = asyncio.get_running_loop().run_in_executor(pool, infer, body)
                fut.add_done_callback(lambda f: self.transport.write(f.result()))

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", port, reuse_port=True)
        await server.serve_forever()

    uvloop.run(serve())


def bare_point(model_path: str | None, duration_s: float, on_loop: bool = False) -> dict[str, object]:
    port = free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_bare_server, args=(port, model_path, on_loop), daemon=True) for _ in range(2 if on_loop else 1)]
    for proc in procs:
        proc.start()
    try:
        wait_for_port(port)
        time.sleep(1.0 if on_loop else 0.0)  # the second process listening too
        target = {"host": "127.0.0.1", "port": port, "grpc": "", "model": "small_cnn"}
        return measure_point(target, "http-binary", CONCURRENCY, duration_s, 1.0, None, {"server": [p.pid or 0 for p in procs]})
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(10)


def ort_batch_us(model_path: str, batch: int = 8, seconds: float = 2.0) -> float:
    """ONNX Runtime's CPU µs per image in batches of `batch` on one thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    feed = {"input": np.repeat(X, batch, axis=0)}
    for _ in range(20):
        sess.run(None, feed)
    n, c0, stop = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < stop:
        sess.run(None, feed)
        n += batch
    return (time.process_time() - c0) / n * 1e6


def one_round(model_path: str, repo: Path, state: Path, duration_s: float) -> dict[str, object]:
    ip = in_process(model_path, X, duration_s, 1, 2, own_sessions=True)
    ort_us = ort_batch_us(model_path)
    args = argparse.Namespace(server_args=[], concurrency=[CONCURRENCY], clients=["http-binary"], duration=duration_s)
    rows = {
        FIXED: bare_point(None, duration_s),
        "bare (model on two threads)": bare_point(model_path, duration_s),
        "bare (model on the loop, two processes)": bare_point(model_path, duration_s, on_loop=True),
        "modelplex": serve_points(args, repo, state, None)[0],
    }
    return {"in_process_rps": ip["rps"], "ort_us_per_image": ort_us,
            "budget_us": budget_us(ip["rps"], ort_us), "servers": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per point")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.rounds < 1 or not args.duration > 0:
        ap.error("--rounds must be at least 1 and --duration positive")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_path = write_repo(root)
        for r in range(args.rounds):
            rounds.append(one_round(model_path, root / "models", root / f"state-{r}", args.duration))
            print(f"round {r + 1}/{args.rounds}: {json.dumps(rounds[-1])}", flush=True)
    (HERE.parent / "results" / "datapath_floor.json").write_text(json.dumps(rounds, indent=2))
    print(table(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
