"""Serving benchmark: modelplex (HTTP binary, HTTP JSON, gRPC) against in-process ONNX Runtime,
on the same model and the same cores, in one run.

    .venv/bin/python benchmarks/run_serving.py [--duration 5] [--concurrency 1,8,32]

Writes benchmarks/results/serving.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

import numpy as np  # noqa: E402

import loadgen  # noqa: E402
from server import start_server  # noqa: E402


def in_process(model_path: str, x: np.ndarray, duration_s: float, threads: int, callers: int,
               own_sessions: bool = False) -> dict[str, float]:
    """Batch-1 inference in this process: `callers` Python threads on one session of `threads`
    (`own_sessions`: each caller on a session of its own)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    shared = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
    sessions = [ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"]) for _ in range(callers)] \
        if own_sessions else [shared] * callers
    feed = {shared.get_inputs()[0].name: x}
    for sess in sessions:
        for _ in range(50):
            sess.run(None, feed)
    lat: list[list[float]] = [[] for _ in range(callers)]
    stop = time.perf_counter() + duration_s

    def loop(i: int) -> None:
        out, sess = lat[i], sessions[i]
        while (t0 := time.perf_counter()) < stop:
            sess.run(None, feed)
            out.append(time.perf_counter() - t0)

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    all_lat = np.array([v for l in lat for v in l]) * 1e3
    return {"rps": len(all_lat) / duration_s, "p50_ms": float(np.percentile(all_lat, 50)), "p99_ms": float(np.percentile(all_lat, 99))}


async def measure(server_http: tuple[str, int], grpc_target: str, x: np.ndarray, conc: list[int], duration_s: float) -> list[dict[str, object]]:
    host, port = server_http
    path = "/v2/models/cnn/infer"
    binary_body, hlen = loadgen.infer_body_binary("input", x)
    json_body = loadgen.infer_body_json("input", x, binary_output=False)
    variants = {
        "http-binary": loadgen.http_request(host, port, path, binary_body, hlen),
        "http-json": loadgen.http_request(host, port, path, json_body),
    }
    rows: list[dict[str, object]] = []
    for c in conc:
        for name, raw in variants.items():
            calls = await loadgen.http_callers(host, port, raw, c)
            res = await loadgen.closed_loop(calls, duration_s)
            rows.append({"client": name, "concurrency": c, **res.summary()})
            print(json.dumps(rows[-1]), flush=True)
        calls = await loadgen.grpc_callers(grpc_target, "cnn", "input", x, "FP32", c)
        res = await loadgen.closed_loop(calls, duration_s)
        rows.append({"client": "grpc", "concurrency": c, **res.summary()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per point")
    ap.add_argument("--concurrency", default="1,8,32", help="requests in flight")
    ap.add_argument("--cpus", default="0-1", help="cores for the server's slices")
    ap.add_argument("--instances", type=int, default=2, help="cnn worker instances (slices) on those cores")
    ap.add_argument("--out", default=str(HERE / "results" / "serving.json"))
    args = ap.parse_args()
    conc = [int(c) for c in args.concurrency.split(",")]
    from modelplex.repository.examples import write_examples

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        write_examples(repo)
        for other in repo.iterdir():  # serve the CNN alone, on all the given cores
            if other.name != "cnn":
                import shutil

                shutil.rmtree(other)
        # throughput is measured without a deadline: no request may be rejected for its SLO
        (repo / "cnn" / "config.yaml").write_text(f"task: image-classification\ninstances: {args.instances}\n")
        model_path = str(repo / "cnn" / "1" / "model.onnx")
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        baseline = {
            "1 thread, 1 caller": in_process(model_path, x, args.duration, 1, 1),
            "2 threads, 1 caller": in_process(model_path, x, args.duration, 2, 1),
            "1 thread, 2 callers": in_process(model_path, x, args.duration, 1, 2),
        }
        for k, v in baseline.items():
            print(f"in-process {k}: {json.dumps(v)}", flush=True)
        srv = start_server(repo, Path(tmp) / "state", ["--cpus", args.cpus])
        try:
            with urllib.request.urlopen(f"http://{srv.http_url}/v2/status") as r:
                idle = json.loads(r.read())
            rows = asyncio.run(measure(("127.0.0.1", srv.http_port), srv.grpc_url, x, conc, args.duration))
        finally:
            srv.stop()
    best = max(v["rps"] for v in baseline.values())
    report = {"machine": {"cpus": os.cpu_count()}, "instances": args.instances, "in_process": baseline, "server": rows, "idle_memory": idle}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print("\n| client | in flight | req/s | p50 ms | p99 ms | vs best in-process |")
    print("|---|---|---|---|---|---|")
    for name, v in baseline.items():
        print(f"| ONNX Runtime in-process, {name} | {name.split(', ')[1].split()[0]} | {v['rps']:.0f} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['rps'] / best:.0%} |")
    for r in rows:
        print(f"| modelplex {r['client']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {float(r['rps']) / best:.0%} |")  # type: ignore[arg-type]
    fe = idle["frontend"]["rss_mb"]
    workers = [s["worker"]["rss_mb"] for s in idle["slices"]]
    print(f"\nidle memory: frontend {fe} MiB, workers {workers} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
