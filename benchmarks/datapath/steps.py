"""Where the frontend's CPU goes per request, by step: the server's frontend pinned to core 0 and
its worker to core 1 (so the frontend is never preempted and py-spy's samples are its CPU time),
the load generator on core 1, 32 requests in flight (`--concurrency`); py-spy samples the frontend and each sample
is charged to the innermost step it is in. µs per request = the frontend's CPU per answered
request (psutil) split by the samples' shares.

    .venv/bin/python benchmarks/datapath/steps.py [--base-src DIR] [--clients ...] [--seconds 7]

Needs py-spy (`pip install py-spy`; a dev dependency). Prints one table per client.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1] / "tests" / "support")]

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import small_cnn  # noqa: E402
from procs import answered, load_process  # noqa: E402
from server import start_server  # noqa: E402

# (step, path fragments of its frames); a sample goes to the first step found from the innermost frame out
STEPS = [
    ("statistics", ["prometheus_client", "serving/stats.py", "timeline.py"]),
    ("validation", ["serving/validate.py", "json_data.py"]),
    ("request decoding", ["http_codec.py:decode", "_decode_inputs", "_header_length", "decode_pool.py", "grpc_decode.py"]),
    ("response encoding", ["encode_response", "grpc_codec.py"]),
    ("hop to the worker", ["worker_handle.py", "wire.py", "runtime/local.py", "gather_inputs", "arena.py", "streams.py"]),
    ("batching, scheduling, routing", ["dispatch/", "slice_runner.py", "slice_set.py"]),
    ("admission, deadlines, answers", ["serving/requests.py", "serving/books.py", "serving/limits.py", "runtime/clock.py", "dataplane.py"]),
    ("HTTP edge (uvicorn, our handler)", ["uvicorn/", "http_frontend.py", "http_protocol.py", "starlette/"]),
    ("gRPC edge (HTTP/2, calls, our handler)", ["grpc/", "grpc_frontend.py", "grpc_edge.py", "h2_conn.py", "h2_frames.py", "hpack/"]),
]
OTHER = "event loop, sockets, C libraries"


def classify(raw: str) -> dict[str, float]:
    """Share of the samples in each step, from py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        step = next((name for frame in reversed(stack.split(";")) for name, keys in STEPS if any(k in frame for k in keys)), OTHER)
        counts[step] += int(n)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}


def profile_one(src: str | None, client: str, conc: int, seconds: float, spy: str, tmp: Path) -> tuple[float, dict[str, float]]:
    env = {"PYTHONPATH": str(Path(src).resolve())} if src else None
    srv = start_server(tmp / "models", tmp / f"state-{client}-{bool(src)}", ["--cpus", "1"], env_extra=env)
    try:
        os.sched_setaffinity(srv.proc.pid, {0})
        target = {"host": "127.0.0.1", "port": srv.http_port, "grpc": srv.grpc_url, "model": "small_cnn"}
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        load = ctx.Process(target=load_process, args=(child, target, client, conc, seconds + 2.0, 1.0, x))
        load.start()
        os.sched_setaffinity(load.pid, {1})
        time.sleep(2.0)

        front = psutil.Process(srv.proc.pid)
        n0, c0 = answered(srv), sum(front.cpu_times()[:2])
        out = tmp / f"spy-{client}-{bool(src)}.txt"
        subprocess.run([spy, "record", "--pid", str(srv.proc.pid), "-d", str(int(seconds)), "-r", "250", "--format", "raw",
                        "-o", str(out), "--nonblocking"], capture_output=True, check=True)
        n1, c1 = answered(srv), sum(front.cpu_times()[:2])
        parent.recv()
        load.join(30)
        return (c1 - c0) / max(1, n1 - n0) * 1e6, classify(out.read_text())
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-src", help="also profile this checkout's src/ (before)")
    ap.add_argument("--clients", default="http-binary,http-json,grpc", type=lambda s: s.split(","))
    ap.add_argument("--seconds", type=float, default=7.0)
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        small_cnn.build(tmp / "models" / "small_cnn" / "1" / "model.onnx")
        for client in args.clients:
            cols = [("after", profile_one(None, client, args.concurrency, args.seconds, spy, tmp))]
            if args.base_src:
                cols.insert(0, ("before", profile_one(args.base_src, client, args.concurrency, args.seconds, spy, tmp)))
            names = [n for n, _ in STEPS] + [OTHER]
            print(f"\n{client}, {args.concurrency} in flight: frontend CPU µs per request by step\n")
            print("| step | " + " | ".join(c for c, _ in cols) + " |")
            print("|---|" + "---|" * len(cols))
            for step in names:
                vals = [f"{us * shares.get(step, 0.0):.1f}" for _, (us, shares) in cols]
                print(f"| {step} | " + " | ".join(vals) + " |")
            print("| **total** | " + " | ".join(f"**{us:.1f}**" for _, (us, _) in cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
