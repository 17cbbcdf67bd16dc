"""Soak: open-loop Poisson at 70 % of capacity for a long while (issue 14).

    PYTHONPATH=src .venv/bin/python benchmarks/reliability/soak.py [--duration 600 | --quick]

One server with two copies of a small CNN (`slo` with slo_ms in its config, `plain` without; a
share of `plain`'s requests carry a `timeout` parameter). Capacity of both at once is measured
first (closed loop). Every `--sample` seconds the server tree's RSS (frontend, workers), open file
descriptors and threads are read: first/last/max and a linear-fit slope per minute. Per window
(`--window`, a minute) and model: answers by status, unanswered, late 200s, p50/p99/max.
Writes benchmarks/reliability/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

import numpy as np

import common
from analysis import Table, phase_summary
from common import PLAIN_MODEL, SLO_MODEL, ModelSpec
from openloop import OpenLoop, capacity
from server import RunningServer

log = logging.getLogger("reliability.soak")
GROUPS = {SLO_MODEL: [0], PLAIN_MODEL: [1, 2]}  # kind indices of common.standard_kinds per model
TRACKED = ("rss_mb", "frontend_rss_mb", "workers_rss_mb", "fds", "threads", "processes")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--quick", action="store_true", help="--duration 60")
    ap.add_argument("--load", type=float, default=0.7, help="offered load, share of the measured capacity")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between process-tree samples")
    ap.add_argument("--window", type=float, default=60.0, help="seconds per row of the per-minute table")
    common.add_load_args(ap, 2000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.duration = 60.0
    return args


def trend(samples: list[tuple[float, dict[str, float]]]) -> dict[str, dict[str, float | None]]:
    """Per tracked quantity: first, last, max and the least-squares slope per minute."""
    t = np.array([s[0] for s in samples]) / 60.0
    out: dict[str, dict[str, float | None]] = {}
    for key in TRACKED:
        v = np.array([s[1].get(key, 0.0) for s in samples])
        slope = float(np.polyfit(t, v, 1)[0]) if len(samples) >= 3 else None
        out[key] = {"first": float(v[0]), "last": float(v[-1]), "max": float(v.max()),
                    "slope_per_min": round(slope, 3) + 0.0 if slope is not None else None}
    return out


async def soak(srv: RunningServer, spec: ModelSpec, args: argparse.Namespace) -> dict[str, object]:
    caps = await capacity(srv.http_port, common.capacity_kinds(srv, spec), 16, 6.0)
    cap = {SLO_MODEL: round(caps[0], 1), PLAIN_MODEL: round(caps[1], 1)}
    rates = {k: round(v * args.load, 1) for k, v in cap.items()}
    log.info("capacity (both at once, closed loop): %s req/s; offered %s req/s for %.0f s", cap, rates, args.duration)
    kinds = common.standard_kinds(srv, spec, args.timeout_ms, args.bound_ms)
    times, kidx = common.poisson_trace({0: rates[SLO_MODEL], 1: rates[PLAIN_MODEL]}, args.duration, args.seed,
                                       split={1: (2, args.timeout_share)})
    samples: list[tuple[float, dict[str, float]]] = []

    async def sample(loop: OpenLoop) -> None:
        t = 0.0
        while t <= args.duration + 1e-6:
            await asyncio.sleep(max(0.0, t - loop.now()))
            samples.append((round(loop.now(), 2), await asyncio.to_thread(common.tree_usage, srv.proc.pid)))
            log.info("t=%.0f s: %s", t, samples[-1][1])
            t += args.sample

    loop = OpenLoop(srv.http_port, kinds, args.max_outstanding, args.client_timeout)
    rec = await loop.run(times, kidx, side=sample)
    tb = Table.of(rec, kinds)
    windows = []
    w0 = 0.0
    while w0 < args.duration - 1e-6:
        w1 = min(w0 + args.window, args.duration)
        windows.append({"from_s": w0, "to_s": w1, **{m: phase_summary(tb, ks, w0, w1) for m, ks in GROUPS.items()}})
        w0 = w1
    return {"capacity_rps": cap, "rates_rps": rates, "process_tree": trend(samples), "samples": samples,
            "client_connections_opened": rec.connections_opened,
            "windows": windows, "all": {m: phase_summary(tb, ks, 0.0, args.duration) for m, ks in GROUPS.items()}}


def print_report(doc: dict[str, object]) -> None:
    tree = doc["process_tree"]
    assert isinstance(tree, dict)
    print("\n" + common.table(["server process tree", "first", "last", "max", "slope per minute"],
                              [[k, v["first"], v["last"], v["max"], v["slope_per_min"]] for k, v in tree.items()]))
    head = ["window s", "model", "sent", "200", "503", "504", "other", "unanswered", "late 200", "not sent",
            "p50 ms", "p99 ms", "max ms"]
    rows = []
    windows = doc["windows"]
    assert isinstance(windows, list)
    for w in [*windows, {"from_s": "all", "to_s": "", **doc["all"]}]:  # type: ignore[dict-item]
        for m in GROUPS:
            s = w[m]
            rows.append([f"{w['from_s']:g}-{w['to_s']:g}" if w["to_s"] != "" else "all", m, s["sent"], s["200"], s["503"], s["504"],
                         s["other"] + s["429"] + s["conn_error"], s["unanswered"],
                         f"{s['late_200']}/{s['with_deadline']}", s["not_sent_by_client"],
                         s["p50_ms"], s["p99_ms"], s["max_ms"]])
    print("\n" + common.table(head, rows))
    print("\nlate 200 = answered 200 past the deadline the request carried / requests sent with a deadline;"
          " RSS in MiB (frontend + workers), fds and threads summed over the server's process tree")


def main() -> int:
    common.setup_logging()
    args = parse_args()
    spec = ModelSpec(args.layers, args.size, args.slo_ms)
    with tempfile.TemporaryDirectory(prefix="mp-soak-") as tmp:
        srv = common.start(Path(tmp), spec, args.cpus, args.bound_ms / 1e3)
        try:
            doc = asyncio.run(soak(srv, spec, args))
        finally:
            srv.stop()
    common.write_json("soak", {"args": vars(args), **doc}, args.out)
    print(f"\ncapacity {doc['capacity_rps']} req/s; offered {doc['rates_rps']} req/s for {args.duration:.0f} s;"
          f" the client opened {doc['client_connections_opened']} connections (each an fd of the server)")
    print_report(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
