"""What a live dashboard costs the server: throughput, latency and the frontend's CPU under the
same closed-loop load, without a dashboard client and with one refreshing 10 times per second.

    PYTHONPATH=src .venv/bin/python benchmarks/dashboard_cost.py [--duration 8] [--rounds 2] [--callers 8]

Modes, alternated round by round on one server, each under load and then idle (no load: the
polls' own cost, clear of the load's noise): `none`; `page 10/s` polls /v2/dashboard/data
the way the page does (only the points after the last one it has); `full 10/s` asks for the
whole history every time (the worst a client can do). The dashboard client runs in a process
of its own, so it takes no time from the load generator's event loop. The frontend's CPU is
its process's user+system time over the run (workers excluded), in % of one core. Writes
benchmarks/results/dashboard_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import loadgen  # noqa: E402
from modelplex.repository.examples import write_examples  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

log = logging.getLogger("dashboard_cost")
MODES = ("none", "page 10/s", "full 10/s")
MAX_POLLS = 100_000  # a dashboard client stops here at the latest


def _poll(host: str, port: int, period_s: float, full: bool, stop: Any, counts: Any) -> None:
    """A dashboard client: GET the data every `period_s`; counts[0] polls, counts[1] bytes."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    after: float | None = None
    next_t = time.perf_counter()
    for _ in range(MAX_POLLS):
        if stop.is_set():
            return
        path = "/v2/dashboard/data" + ("" if full or after is None else f"?after={after}")
        conn.request("GET", path)
        body = conn.getresponse().read()
        doc = json.loads(body)
        if doc["series"]["t"]:
            after = doc["series"]["t"][-1]
        counts[0] += 1
        counts[1] += len(body)
        next_t += period_s
        time.sleep(max(0.0, next_t - time.perf_counter()))


def _run(srv: RunningServer, pid: int, raw: bytes, mode: str, args: argparse.Namespace, loaded: bool = True) -> dict[str, Any]:
    stop, counts = mp.Event(), mp.Array("d", 2)
    client = None
    if mode != "none":
        client = mp.Process(target=_poll, args=("127.0.0.1", srv.http_port, 0.1, mode.startswith("full"), stop, counts))
        client.start()
    proc = psutil.Process(pid)
    c0, t0 = proc.cpu_times(), time.perf_counter()

    async def load() -> loadgen.Result:
        calls = await loadgen.http_callers("127.0.0.1", srv.http_port, raw, args.callers)
        return await loadgen.closed_loop(calls, args.duration, warmup_s=1.0)

    if loaded:
        result = asyncio.run(load())
    else:  # no load: what the polls alone cost
        time.sleep(args.duration + 1.0)
        result = loadgen.Result(duration_s=args.duration)
    c1, wall = proc.cpu_times(), time.perf_counter() - t0
    stop.set()
    if client is not None:
        client.join(10)
    s = result.summary()
    polls = counts[0]
    return {"mode": mode if loaded else f"{mode}, idle", "rps": s["rps"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "errors": s["errors"],
            "frontend_cpu_pct": 100 * ((c1.user - c0.user) + (c1.system - c0.system)) / wall,
            "polls_per_s": polls / wall, "kb_per_poll": counts[1] / polls / 1024 if polls else 0.0}


def _mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": rows[0]["mode"], "runs": len(rows)}
    for k in ("rps", "p50_ms", "p99_ms", "errors", "frontend_cpu_pct", "polls_per_s", "kb_per_poll"):
        out[k] = round(float(np.mean([r[k] for r in rows])), 2)
    out["cpu_us_per_req"] = round(out["frontend_cpu_pct"] / 100 / out["rps"] * 1e6, 1) if out["rps"] else 0.0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds measured per run (after 1 s warm-up)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternated")
    ap.add_argument("--callers", type=int, default=8, help="closed-loop connections with a request in flight")
    ap.add_argument("--cpus", default="0-1", help="cores the server cuts into slices")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        write_examples(repo)
        for name in ("resnet", "transformer", "cnn"):
            import shutil

            shutil.rmtree(repo / name, ignore_errors=True)
        srv = start_server(repo, Path(tmp) / "state", ["--cpus", args.cpus])
        try:
            pid = srv.get_json("/v2/status")["frontend"]["pid"]
            x = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
            raw = loadgen.http_request("127.0.0.1", srv.http_port, "/v2/models/mlp/infer", loadgen.infer_body_json("input", x))
            _run(srv, pid, raw, "none", args)  # warm-up, discarded: first batches, caches, connection set-up
            runs: dict[str, list[dict[str, Any]]] = {}
            for r in range(args.rounds):
                for mode, loaded in [(m, True) for m in MODES] + [(m, False) for m in MODES]:
                    row = _run(srv, pid, raw, mode, args, loaded)
                    runs.setdefault(row["mode"], []).append(row)
                    log.info("round %d %-16s %8.0f req/s  p99 %6.2f ms  frontend CPU %5.1f%%", r + 1, row["mode"], row["rps"],
                             row["p99_ms"], row["frontend_cpu_pct"])
        finally:
            srv.stop()
    table = [_mean(rows) for rows in runs.values()]
    print(f"\n{'mode':<16} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'frontend CPU':>13} {'CPU us/req':>11} {'polls/s':>8} "
          f"{'KiB/poll':>9}")
    for t in table:
        print(f"{t['mode']:<16} {t['rps']:>8.0f} {t['p50_ms']:>7.2f} {t['p99_ms']:>7.2f} {t['frontend_cpu_pct']:>12.1f}% "
              f"{t['cpu_us_per_req']:>11.1f} {t['polls_per_s']:>8.1f} {t['kb_per_poll']:>9.1f}")
    out = HERE / "results" / "dashboard_cost.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "table": table, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
