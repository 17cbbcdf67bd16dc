"""Overload: open-loop Poisson at 3x the measured capacity (issue 14).

    PYTHONPATH=src .venv/bin/python benchmarks/reliability/overload.py [--quick]

One server with two copies of a small CNN (`slo` with slo_ms in its config, `plain` without).
Capacity of each model alone is measured first (closed loop, `--in-flight` requests, deadlines out
of the way). Then four variants, one model at a time, each on a fresh server: with and without an SLO, with and without
clients that re-send at once on 503/429 (a share of the arrivals, each re-sending at most
`--max-retries` times, at most `--retry-budget` re-sends in all). Per variant: goodput (200 within
the SLO, or within `--bound-ms` without one) and goodput / capacity, throughput, admitted p50/p99,
answers by status, the worst second, and the server tree's RSS idle before, peak, and 10 s after.
Writes benchmarks/reliability/results/overload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import common
from analysis import Table, counts, latency, per_second, worst_second
from common import PLAIN_MODEL, SLO_MODEL, ModelSpec, TreeSampler
from openloop import NOT_SENT, OpenLoop, RetryPolicy, capacity
from server import RunningServer

log = logging.getLogger("reliability.overload")
VARIANTS = [(SLO_MODEL, False), (SLO_MODEL, True), (PLAIN_MODEL, False), (PLAIN_MODEL, True)]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short capacity and load phases")
    ap.add_argument("--duration", type=float, default=None, help="seconds of overload per variant (default 20; quick 6)")
    ap.add_argument("--factor", type=float, default=3.0, help="offered load, multiple of capacity")
    ap.add_argument("--in-flight", type=int, default=32, help="closed-loop requests in flight for capacity")
    ap.add_argument("--after", type=float, default=10.0, help="seconds after the load when memory is read again")
    common.add_load_args(ap, 1000, timeouts=False)
    ap.add_argument("--retry-share", type=float, default=0.5, help="share of arrivals from retrying clients")
    ap.add_argument("--max-retries", type=int, default=10, help="re-sends of one request at most")
    ap.add_argument("--retry-budget", type=float, default=2.0, help="re-sends in all at most, times the arrivals")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.duration = args.duration if args.duration is not None else (6.0 if args.quick else 20.0)
    return args


def idle_usage(srv: RunningServer, settle_s: float = 3.0) -> dict[str, float]:
    """The tree's usage after `settle_s` without load."""
    time.sleep(settle_s)
    return common.tree_usage(srv.proc.pid)


async def run_variant(srv: RunningServer, spec: ModelSpec, args: argparse.Namespace, cap: dict[str, float],
                      model: str, retry: bool) -> dict[str, object]:
    idle = await asyncio.to_thread(idle_usage, srv)
    x = spec.input()
    deadline = spec.slo_ms / 1e3 if model == SLO_MODEL else None
    kinds = [common.make_kind(srv, model, x, deadline, args.bound_ms / 1e3)]
    rate = cap[model] * args.factor
    times, kidx = common.poisson_trace({0: rate}, args.duration, args.seed)
    policy = RetryPolicy(args.retry_share, args.max_retries, int(args.retry_budget * len(times))) if retry else None
    loop = OpenLoop(srv.http_port, kinds, args.max_outstanding, args.client_timeout, policy, args.seed)
    with TreeSampler(srv.proc.pid, 0.25) as sampler:
        rec = await loop.run(times, kidx)
        drained = loop.now()
        await asyncio.sleep(max(0.0, args.duration + args.after - loop.now()))
        after = common.tree_usage(srv.proc.pid)
        after_at = loop.now() - args.duration
    tb = Table.of(rec, kinds)
    return {"model": model, "retry": retry, "capacity_rps": cap[model], "offered_rps": round(rate, 1),
            **judge(tb, args.duration, cap[model]),
            "all_answered_at_s": round(drained, 2),
            "memory_mb": {"idle": idle["rss_mb"], "peak": sampler.peak("rss_mb"), "after": after["rss_mb"],
                          "after_s": round(after_at, 1), "after_over_idle": round(after["rss_mb"] / idle["rss_mb"], 3),
                          "idle_detail": idle, "after_detail": after,
                          "peak_frontend": sampler.peak("frontend_rss_mb"), "peak_workers": sampler.peak("workers_rss_mb")}}


def judge(tb: Table, duration_s: float, cap: float) -> dict[str, object]:
    """Counts, goodput, throughput, latency of the admitted, the worst second, retries."""
    m = tb.mask([0], 0.0, duration_s + 3600)
    c = counts(tb, m)
    first = m & (tb.attempt == 0)
    requests_good = int(len(set(tb.request[m & tb.good].tolist())))
    series = per_second(tb, [0], 0.0, duration_s)
    with np.errstate(invalid="ignore"):
        in_load = m & (tb.done_s <= duration_s)  # answered while the load lasted
    good_rps = float((in_load & tb.good).sum()) / duration_s
    return {
        "counts": c,
        "arrivals": int(first.sum()),
        "retries_sent": int((m & (tb.attempt > 0) & (tb.status != NOT_SENT)).sum()),
        "requests_answered_good": requests_good,
        "goodput_rps": round(good_rps, 1),
        "goodput_over_capacity": round(good_rps / cap, 3) if cap else None,
        "throughput_rps": round(float((in_load & (tb.status == 200)).sum()) / duration_s, 1),
        "admitted": latency(tb, m),
        "worst_second": worst_second(series),
        "per_second": series,
    }


async def measure_capacity(srv: RunningServer, spec: ModelSpec, args: argparse.Namespace) -> dict[str, float]:
    """Each model alone, closed loop."""
    kinds = common.capacity_kinds(srv, spec)
    await capacity(srv.http_port, kinds, 2, 1.0, warmup_s=0.0)  # warm both workers
    out = {}
    for name, kind in zip((SLO_MODEL, PLAIN_MODEL), kinds):
        out[name] = round((await capacity(srv.http_port, [kind], args.in_flight, 3.0 if args.quick else 8.0))[0], 1)
    log.info("capacity alone (closed loop, %d in flight): %s req/s", args.in_flight, out)
    return out


def print_report(rows: list[dict[str, Any]]) -> None:  # JSON-shaped rows
    head = ["model", "retry", "capacity/s", "offered/s", "arrivals", "sent", "not sent", "retries", "200", "503",
            "504", "429", "other", "unanswered", "late 200", "goodput/s", "goodput/cap", "throughput/s", "p50 ms",
            "p99 ms", "client lag p99 ms", "worst second", "RSS idle/peak/after MiB", "after/idle"]
    out = []
    for r in rows:
        c, a, mem, w = r["counts"], r["admitted"], r["memory_mb"], r["worst_second"]
        worst = f"t={w['t']}: {w['good']}/{w['sent']} good, p99 {common.fmt(w['p99_ms'])} ms" if w else "-"
        out.append([r["model"], "yes" if r["retry"] else "no", r["capacity_rps"], r["offered_rps"], r["arrivals"],
                    c["sent"], c["not_sent_by_client"], r["retries_sent"], c["200"], c["503"], c["504"], c["429"],
                    c["other"] + c["conn_error"], c["unanswered"], c["late_200"], r["goodput_rps"], r["goodput_over_capacity"],
                    r["throughput_rps"], a["p50_ms"], a["p99_ms"], a["client_lag_p99_ms"], worst,
                    f"{mem['idle']:.0f}/{mem['peak']:.0f}/{mem['after']:.0f}", mem["after_over_idle"]])
    print("\n" + common.table(head, out))
    print("\ngoodput = answers 200 within the SLO (slo) or the --bound-ms (plain), answered while the load lasted, per"
          " second of load; throughput likewise for all 200s; sent/200/... count attempts (re-sends included); late 200 ="
          " past the SLO; p50/p99 of the 200 answers; client lag = send delay of the load generator itself;"
          " memory: frontend + workers RSS")


async def run_all(root: Path, spec: ModelSpec, args: argparse.Namespace) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Capacity on one server, then each variant on a fresh one (a variant cannot spoil the next)."""
    srv = common.start(root / "capacity", spec, args.cpus, args.bound_ms / 1e3)
    try:
        cap = await measure_capacity(srv, spec, args)
    finally:
        srv.stop()
    rows = []
    for i, (model, retry) in enumerate(VARIANTS):
        log.info("overload: %s, retrying clients: %s", model, retry)
        srv = common.start(root / f"variant{i}", spec, args.cpus, args.bound_ms / 1e3)
        try:
            await capacity(srv.http_port, common.capacity_kinds(srv, spec), 2, 1.0, warmup_s=0.0)  # warm up
            rows.append(await run_variant(srv, spec, args, cap, model, retry))
        finally:
            srv.stop()
    return cap, rows


def main() -> int:
    common.setup_logging()
    args = parse_args()
    spec = ModelSpec(args.layers, args.size, args.slo_ms)
    with tempfile.TemporaryDirectory(prefix="mp-overload-") as tmp:
        cap, rows = asyncio.run(run_all(Path(tmp), spec, args))
    common.write_json("overload", {"args": vars(args), "capacity_rps": cap, "variants": rows}, args.out)
    print_report(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
