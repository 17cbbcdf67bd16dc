"""Worker stalls and kills under open-loop load (issue 14).

    PYTHONPATH=src .venv/bin/python benchmarks/reliability/stall.py [--quick] [--targets slo,plain]

Two copies of a small CNN on one server (`slo` with slo_ms in its config, `plain` without; a share
of `plain`'s requests carry a `timeout` parameter), Poisson load at `--load` (default 50 %) of the
capacity measured first. Per scenario, on a fresh server, one model's workers get SIGSTOP for 0.3,
1 and 15 s (then SIGCONT), or SIGKILL. Per scenario and model: requests by outcome, unanswered,
200s past their deadline, recovery time, p50/p99 before/during/after and the worst second.
Writes benchmarks/reliability/results/stall.json (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path
from typing import Any

import common
from analysis import Table, per_second, phase_summary, recovery_s, worst_second
from common import PLAIN_MODEL, SLO_MODEL, ModelSpec
from openloop import OpenLoop, Records, capacity

log = logging.getLogger("reliability.stall")
GROUPS = {SLO_MODEL: [0], PLAIN_MODEL: [1, 2]}  # kind indices of common.standard_kinds per model
KILL_DURING_S = 2.0  # a kill's "during" phase: the first 2 s after it (the recovery target)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short phases, stalls of the slo model only")
    ap.add_argument("--targets", default=None, help="models whose workers are stalled (default slo,plain; quick: slo)")
    ap.add_argument("--scenarios", default="stop0.3,stop1,stop15,kill", help="stopS (SIGSTOP for S s) and kill")
    ap.add_argument("--before", type=float, default=None, help="seconds of load before the fault (default 10; quick 3)")
    ap.add_argument("--after", type=float, default=None, help="seconds of load after it ends (default 20; quick 8)")
    ap.add_argument("--load", type=float, default=0.5, help="offered load, share of the measured capacity")
    ap.add_argument("--rates", default=None, help="req/s per model instead of measuring, e.g. slo=150,plain=150")
    common.add_load_args(ap, 4000)
    ap.add_argument("--keep-logs", action="store_true", help="copy each server's log to results/logs/")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    args.targets = (args.targets or ("slo" if args.quick else "slo,plain")).split(",")
    args.before = args.before if args.before is not None else (3.0 if args.quick else 10.0)
    args.after = args.after if args.after is not None else (8.0 if args.quick else 20.0)
    return args


def fault_window(scenario: str) -> float:
    """Seconds the fault lasts (0 for a kill)."""
    return float(scenario[4:]) if scenario.startswith("stop") else 0.0


async def run_scenario(root: Path, spec: ModelSpec, args: argparse.Namespace, rates: dict[str, float],
                       scenario: str, target: str) -> tuple[Records, Table, dict[str, object]]:
    srv = common.start(root, spec, args.cpus, args.bound_ms / 1e3)
    try:
        kinds = common.standard_kinds(srv, spec, args.timeout_ms, args.bound_ms)
        stall = fault_window(scenario)
        total = args.before + stall + args.after
        times, kidx = common.poisson_trace({0: rates[SLO_MODEL], 1: rates[PLAIN_MODEL]}, total, args.seed,
                                           split={1: (2, args.timeout_share)})
        await capacity(srv.http_port, common.capacity_kinds(srv, spec), 2, 1.0, warmup_s=0.0)  # warm the workers

        async def inject(loop: OpenLoop) -> None:
            await asyncio.sleep(max(0.0, args.before - loop.now()))
            pids = await asyncio.to_thread(common.worker_pids, srv, target)
            ev = loop.rec.events
            ev["fault"] = loop.now()
            if scenario == "kill":
                common.signal_pids(pids, signal.SIGKILL)
                ev["resume"] = ev["fault"]
                return
            common.signal_pids(pids, signal.SIGSTOP)
            await asyncio.sleep(stall)
            gone = common.signal_pids(pids, signal.SIGCONT)
            ev["resume"] = loop.now()
            ev["pids_gone_at_resume"] = float(len(gone))

        loop = OpenLoop(srv.http_port, kinds, args.max_outstanding, args.client_timeout)
        rec = await loop.run(times, kidx, side=inject)
        status = common.server_status(srv)
        slices: list[dict[str, Any]] = status.get("slices", [])  # type: ignore[assignment]
        restarts = {",".join(s["models"]): s.get("restarts") for s in slices}
        return rec, Table.of(rec, kinds), {"restarts": restarts, "connections_opened": rec.connections_opened}
    finally:
        srv.stop()
        if args.keep_logs:
            common.keep_log(srv, f"stall-{target}-{scenario}")


def summarize(rec: Records, tb: Table, scenario: str) -> dict[str, object]:
    """Per model: phases, recovery from the resume (or kill), the worst second, the per-second series."""
    ev = rec.events
    t_fault, t_resume, t_end = ev["fault"], ev["resume"], rec.duration_s
    t_during_end = t_resume if scenario != "kill" else t_fault + KILL_DURING_S
    out: dict[str, object] = {}
    for model, ks in GROUPS.items():
        series = per_second(tb, ks, 0.0, t_end)
        out[model] = {
            "all": phase_summary(tb, ks, 0.0, t_end),
            "before": phase_summary(tb, ks, 0.0, t_fault),
            "during": phase_summary(tb, ks, t_fault, t_during_end),
            "after": phase_summary(tb, ks, t_during_end, t_end),
            "recovery_s": recovery_s(tb, ks, t_resume, t_end),
            "worst_second": worst_second(series),
            "per_second": series,
        }
    return out


def print_report(results: list[dict[str, Any]]) -> None:  # JSON-shaped results
    head = ["target", "scenario", "model", "sent", "200", "503", "504", "other", "unanswered", "late 200",
            "not sent", "recovery s", "p50/p99 before", "p50/p99 during", "p50/p99 after", "worst second"]
    rows = []
    for r in results:
        for model in GROUPS:
            m = r["models"][model]
            a = m["all"]
            w = m["worst_second"]
            worst = f"t={w['t']}: {w['good']}/{w['sent']} good, p99 {w['p99_ms']} ms" if w else "-"
            ph = [f"{common.fmt(m[p]['p50_ms'])}/{common.fmt(m[p]['p99_ms'])}" for p in ("before", "during", "after")]
            other = a["other"] + a["429"] + a["conn_error"]
            rows.append([r["target"], r["scenario"], model, a["sent"], a["200"], a["503"], a["504"], other,
                         a["unanswered"], f"{a['late_200']}/{a['with_deadline']}", a["not_sent_by_client"],
                         m["recovery_s"] if m["recovery_s"] is not None else "not recovered", *ph, worst])
    print("\n" + common.table(head, rows))
    print("\nlate 200 = answered 200 past the deadline the request carried / requests sent with a deadline;"
          " recovery: seconds from SIGCONT (or the kill) to the first 1-s window from which on >= 99 % are"
          " answered 200 within their deadline (no deadline: the --bound-ms); p50/p99 in ms of the 200 answers")


async def measure_rates(root: Path, spec: ModelSpec, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    if args.rates:
        rates = {k: float(v) for k, v in (p.split("=") for p in args.rates.split(","))}
        return rates, {}
    srv = common.start(root, spec, args.cpus, args.bound_ms / 1e3)
    try:
        caps = await capacity(srv.http_port, common.capacity_kinds(srv, spec), 16, 3.0 if args.quick else 6.0)
    finally:
        srv.stop()
    cap = {SLO_MODEL: caps[0], PLAIN_MODEL: caps[1]}
    log.info("capacity (both models at once, closed loop, 16 in flight each): %s req/s", cap)
    return {k: round(v * args.load, 1) for k, v in cap.items()}, cap


def main() -> int:
    common.setup_logging()
    args = parse_args()
    spec = ModelSpec(args.layers, args.size, args.slo_ms)
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mp-stall-") as tmp:
        rates, cap = asyncio.run(measure_rates(Path(tmp) / "cap", spec, args))
        log.info("offered load: %s req/s", rates)
        for target in args.targets:
            for i, scenario in enumerate(args.scenarios.split(",")):
                log.info("scenario %s on %s", scenario, target)
                rec, tb, extra = asyncio.run(
                    run_scenario(Path(tmp) / f"{target}-{i}", spec, args, rates, scenario, target))
                results.append({"target": target, "scenario": scenario, "events": rec.events, **extra,
                                "models": summarize(rec, tb, scenario)})
    doc = {"args": vars(args), "capacity_rps": cap, "rates_rps": rates, "results": results}
    common.write_json("stall", doc, args.out)
    print(f"\ncapacity {cap} req/s; offered {rates} req/s")
    print_report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
