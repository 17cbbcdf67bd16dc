"""End-to-end: the highest request rate each planning policy serves within SLO on this machine,
measured on a live server, beside the simulator's prediction for the same plan and trace; and a
3x rate step under load with live re-planning.

    .venv/bin/python benchmarks/e2e/plan_experiment.py [--duration 6] [--policies elastic,temporal]
        [--mix mlp:4,cnn:4,transformer:4,resnet:1] [--profiles P.json] [--step]

Writes benchmarks/e2e/results.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import numpy as np  # noqa: E402

import loadgen  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

from modelplex.core.demand import Demand  # noqa: E402
from modelplex.core.devices import DeviceKind, DeviceSpec  # noqa: E402
from modelplex.core.errors import ModelplexError  # noqa: E402
from modelplex.core.plan import Plan  # noqa: E402
from modelplex.planning import plan as make_plan  # noqa: E402
from modelplex.planning.frontend import planner_beside_frontend  # noqa: E402
from modelplex.profiling.storage import read_export  # noqa: E402
from modelplex.repository.examples import example_inputs, write_examples  # noqa: E402
from modelplex.repository.folders import load_model_config  # noqa: E402
from modelplex.sim.arrivals import TraceSpec, generate  # noqa: E402
from modelplex.core.model import BatchingConfig  # noqa: E402
from modelplex.planning.diff import diff  # noqa: E402
from modelplex.sim.engine import SimConfig, Simulator  # noqa: E402
from modelplex.sim.replanning import simulate_replanning  # noqa: E402
from modelplex.control.controller import Controller, ControllerConfig  # noqa: E402

WARMUP_S = 1.0
MIN_REQUESTS = 1000  # per measured rate
CPU = DeviceSpec("cpu0", DeviceKind.CPU, 2)


def parse_mix(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, w = part.partition(":")
        out[name.strip()] = float(w or 1)
    return out


def request_bytes(port: int, model: str) -> bytes:
    feeds = example_inputs(model, 1)
    (name, arr), = feeds.items()
    dtype = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}[arr.dtype]
    body, hlen = loadgen.infer_body_binary(name, arr, dtype)
    return loadgen.http_request("127.0.0.1", port, f"/v2/models/{model}/infer", body, hlen)


async def run_trace(srv: RunningServer, models: list[str], times: np.ndarray, idx: np.ndarray, conns: int) -> loadgen.MixResult:
    calls = [await loadgen.status_callers("127.0.0.1", srv.http_port, request_bytes(srv.http_port, m), conns) for m in models]
    return await loadgen.open_loop_trace(calls, times, idx)


def post_plan(srv: RunningServer, plan: Plan) -> None:
    req = urllib.request.Request(f"http://{srv.http_url}/v2/plan", data=json.dumps(plan.to_json()).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        r.read()


def live_summary(res: loadgen.MixResult, models: list[str], slo_ms: dict[str, float], from_s: float, to_s: float) -> dict[str, Any]:
    sched = np.array(res.sched_s)
    lat = np.array(res.latency_s) * 1e3
    st = np.array(res.status)
    mi = np.array(res.model_index)
    window = (sched >= from_s) & (sched < to_s)
    slo = np.array([slo_ms[models[m]] for m in mi]) if len(mi) else np.array([])
    ok = window & (st == 200) & (lat <= slo)
    answered = window & (st == 200)
    n = int(window.sum())
    return {
        "requests": n,
        "attainment": float(ok.sum() / n) if n else 1.0,
        "lost": int((window & (st == 0)).sum()),
        "rejected": int((window & (st != 200) & (st != 0)).sum()),
        "p50_ms": float(np.percentile(lat[answered], 50)) if answered.any() else 0.0,
        "p99_ms": float(np.percentile(lat[answered], 99)) if answered.any() else 0.0,
        "goodput_rps": float(ok.sum() / (to_s - from_s)),
    }


def peak_search(srv: RunningServer, policy: str, models: list[str], mix: dict[str, float], slo_ms: dict[str, float],
                profiles: list[Any], rates: list[float], duration_s: float, seed: int, conns: int,
                batching: dict[str, BatchingConfig]) -> dict[str, Any]:
    weights = np.array([mix[m] for m in models]) / sum(mix[m] for m in models)
    points = []
    peak = 0.0
    failures = 0
    for total in rates:
        per_model = [float(total * w) for w in weights]
        demands = [Demand(m, r, slo_ms[m]) for m, r in zip(models, per_model)]
        point: dict[str, Any] = {"rate_rps": total}
        try:
            plan = make_plan(demands, profiles, [CPU], policy=policy)
        except ModelplexError as exc:
            point["error"] = exc.message
            points.append(point)
            print(f"  {policy} {total:7.1f} req/s: cannot plan ({exc.message})", flush=True)
            break
        post_plan(srv, plan)
        time.sleep(0.5)
        rng = np.random.default_rng(seed)
        # enough requests that 1 % of them is more than a handful: at least MIN_REQUESTS
        span_s = min(max(duration_s, MIN_REQUESTS / total), 4 * duration_s)
        times, idx = generate(TraceSpec("poisson"), per_model, WARMUP_S + span_s, rng)
        res = asyncio.run(run_trace(srv, models, times, idx, conns))
        live = live_summary(res, models, slo_ms, WARMUP_S, WARMUP_S + span_s)
        sim = Simulator(plan, profiles, slo_ms, SimConfig(seed=seed, warmup_s=WARMUP_S), batching).run((times, idx), WARMUP_S + span_s).total
        point.update(
            live=live,
            sim={"attainment": sim.attainment, "p50_ms": sim.p50_ms, "p99_ms": sim.p99_ms, "dropped": sim.dropped},
            slices=len(plan.slices),
            unserved_rps=sum(plan.unserved.values()),
        )
        points.append(point)
        print(f"  {policy} {total:7.1f} req/s: live {live['attainment']:.2%} in SLO (p99 {live['p99_ms']:.1f} ms), "
              f"sim {sim.attainment:.2%} (p99 {sim.p99_ms:.1f} ms), {len(plan.slices)} slices", flush=True)
        if live["attainment"] >= 0.99:
            peak, failures = total, 0
        else:
            failures += 1
            if failures == 2:  # two rates in a row missed: past the peak, not a passing hiccup
                break
    return {"policy": policy, "peak_rps": peak, "points": points}


def step_experiment(repo: Path, profiles_path: Path, state: Path, models: list[str], mix: dict[str, float],
                    slo_ms: dict[str, float], low_rps: float, seed: int, conns: int,
                    batching: dict[str, BatchingConfig]) -> dict[str, Any]:
    """Live re-planning: low_rps for 10 s, then 3x for 15 s; every request must get an answer."""
    expected = ",".join(f"{m}={low_rps * mix[m] / sum(mix.values()):.2f}" for m in models)
    srv = start_server(repo, state, ["--policy", "elastic", "--profiles", str(profiles_path), "--cpus", "0-1",
                                     "--expected-rates", expected])
    try:
        weights = np.array([mix[m] for m in models]) / sum(mix.values())
        rng = np.random.default_rng(seed)
        spec = TraceSpec("step", steps=((0.0, 1.0), (10.0, 3.0)))
        times, idx = generate(spec, [float(low_rps * w) for w in weights], 25.0, rng)
        t_start = time.monotonic()
        res = asyncio.run(run_trace(srv, models, times, idx, conns))
        with urllib.request.urlopen(f"http://{srv.http_url}/v2/plan", timeout=30) as r:
            status = json.loads(r.read())
    finally:
        srv.stop()
    timeline = []
    for t in np.arange(0.0, 25.0, 1.0):
        timeline.append({"t_s": float(t), **live_summary(res, models, slo_ms, t, t + 1.0)})
    replans = status["controller"]["replans"]
    for r in replans:
        r["at_trace_s"] = round(r["at_s"] - t_start, 3)
    # the re-plan that reacted to the step: the first decided after it that changed workers
    reaction = next((r for r in replans if r["at_trace_s"] >= 10.0 and r["changes_workers"] and not r["error"]), None)
    ready_s = reaction["at_trace_s"] + reaction["plan_s"] + reaction["switch_s"] if reaction else None
    after_ready = live_summary(res, models, slo_ms, ready_s + 2.0, 25.0) if ready_s is not None else None
    total = live_summary(res, models, slo_ms, 0.0, 25.0)
    # the simulator's prediction: the same controller, policy, profiles and trace
    profiles = [p for p in read_export(profiles_path) if p.model in mix]
    ctl = Controller(slo_ms, planner_beside_frontend("elastic", profiles, [CPU]), ControllerConfig())  # as the server plans
    expected_rps = {m: low_rps * mix[m] / sum(mix.values()) for m in models}
    sim = simulate_replanning(ctl, profiles, (times, idx), 25.0, expected_rps, SimConfig(seed=seed), batching)
    sim_after = [t for (t, r), (_, prev) in zip(sim.replans[1:], sim.replans) if t >= 10.0 and diff(prev.plan, r.plan).changes_workers]
    return {"low_rps": low_rps, "high_rps": 3 * low_rps, "replans": replans, "timeline": timeline,
            "sim_attainment": sim.result.total.attainment, "sim_replans": len(sim.replans),
            "sim_reaction_s": (sim_after[0] - 10.0) if sim_after else None,
            "live_attainment": total["attainment"],
            "lost": total["lost"], "rejected": total["rejected"], "requests": total["requests"],
            "step_plan_ready_s": ready_s, "reaction_s": None if ready_s is None else ready_s - 10.0,
            "attainment_from_ready_plus_2s": None if after_ready is None else after_ready["attainment"],
            "attainment_before_step": live_summary(res, models, slo_ms, 1.0, 10.0)["attainment"]}


def print_points(policies: list[dict[str, Any]]) -> None:
    """Every measured point: live against the simulator on the same plan and trace."""
    print("\n| policy | total req/s | live in SLO | sim in SLO | difference (points) | live p50 / p99 ms | sim p50 / p99 ms | p99 sim/live | live rejected |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in policies:
        for pt in p["points"]:
            if "live" not in pt:
                print(f"| {p['policy']} | {pt['rate_rps']:.1f} | cannot plan: {pt.get('error', '')} | | | | | | |")
                continue
            lv, sm = pt["live"], pt["sim"]
            ratio = sm["p99_ms"] / lv["p99_ms"] if lv["p99_ms"] else float("nan")
            print(f"| {p['policy']} | {pt['rate_rps']:.1f} | {lv['attainment']:.2%} | {sm['attainment']:.2%} "
                  f"| {100 * (sm['attainment'] - lv['attainment']):+.1f} | {lv['p50_ms']:.1f} / {lv['p99_ms']:.1f} "
                  f"| {sm['p50_ms']:.1f} / {sm['p99_ms']:.1f} | {ratio:.2f} | {lv['rejected']} |")


def save_and_print(results: dict[str, Any], out: Path, tag: str) -> None:
    """Add this run to the results file; print the tables."""
    runs = json.loads(out.read_text()) if out.exists() else {}
    if not isinstance(runs, dict) or "runs" not in runs:
        runs = {"runs": {}}
    runs["runs"][tag] = results
    out.write_text(json.dumps(runs, indent=1))
    print("\n| policy | peak rate within SLO (req/s) | live p99 at peak (ms) | simulator attainment at peak | simulator p99 (ms) |")
    print("|---|---|---|---|---|")
    for p in results["policies"]:
        at = next((pt for pt in p["points"] if pt["rate_rps"] == p["peak_rps"]), None)
        if at and "live" in at:
            print(f"| {p['policy']} | {p['peak_rps']:.1f} | {at['live']['p99_ms']:.1f} | {at['sim']['attainment']:.2%} | {at['sim']['p99_ms']:.1f} |")
        else:
            print(f"| {p['policy']} | {p['peak_rps']:.1f} | - | - | - |")
    print_points(results["policies"])
    peaks = {p["policy"]: p["peak_rps"] for p in results["policies"]}
    if peaks.get("temporal"):
        print(f"\nelastic / temporal = {peaks.get('elastic', 0) / peaks['temporal']:.2f}")
    if "step" in results:
        s = results["step"]
        print(f"\nstep {s['low_rps']:.1f} -> {s['high_rps']:.1f} req/s at t=10 s: {s['requests']} requests, {s['lost']} lost, "
              f"{s['rejected']} rejected; {len(s['replans'])} re-plans; the reacting plan was serving {s['reaction_s']:.2f} s "
              f"after the step; SLO attainment before the step {s['attainment_before_step']:.2%}, from 2 s after the "
              f"new plan to the end {s['attainment_from_ready_plus_2s']:.2%}")
        print(f"  whole run: live {s['live_attainment']:.2%} within SLO; simulator with the same controller "
              f"{s['sim_attainment']:.2%} ({s['sim_replans']} plans, reacting {s['sim_reaction_s']} s after the step)")
        for p in s["timeline"]:
            print(f"  t={p['t_s']:4.0f}s {p['requests']:4d} req {p['attainment']:8.2%} p99 {p['p99_ms']:6.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0, help="measured seconds per rate")
    ap.add_argument("--policies", default="elastic,temporal,exclusive")
    ap.add_argument("--mix", default="mlp:4,cnn:4,transformer:4,resnet:1", help="model:weight of the traffic")
    ap.add_argument("--tag", default="", help="name of this run in the results file (default: the mix)")
    ap.add_argument("--rates", default="", help="total rates to try (default: a ladder from the profiles)")
    ap.add_argument("--profiles", default="", help="profiles JSON (default: measure now with modelplex profile)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--connections", type=int, default=48, help="connections per model")
    ap.add_argument("--step", action="store_true", help="also run the 3x rate step with live re-planning")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()
    mix = parse_mix(args.mix)
    models = sorted(mix)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        repo = tmpd / "models"
        write_examples(repo)
        for d in repo.iterdir():
            if d.name not in mix:
                shutil.rmtree(d)
        slo_ms = {m: float(load_model_config(repo, m).batching.slo_ms or 100.0) for m in models}
        batching = {m: load_model_config(repo, m).batching for m in models}
        profiles_path = Path(args.profiles) if args.profiles else tmpd / "profiles.json"
        if not args.profiles:
            print("profiling the models on this machine ...", flush=True)
            subprocess.run([sys.executable, "-m", "modelplex.cli", "profile", "--repository", str(repo), "--batches", "1,2,4,8,16",
                            "--slices", "1,2", "--state-dir", str(tmpd / "pstate"), "--out", str(profiles_path), "--quiet"], check=True)
        profiles = [p for p in read_export(profiles_path) if p.model in mix]
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [25.0 * 1.25 ** k for k in range(22)]
        srv = start_server(repo, tmpd / "state", ["--policy", "elastic", "--profiles", str(profiles_path), "--no-replan",
                                                  "--cpus", "0-1"])
        results: dict[str, Any] = {"mix": mix, "slo_ms": slo_ms, "duration_s": args.duration, "policies": []}
        try:
            for policy in args.policies.split(","):
                print(f"peak search: {policy}", flush=True)
                results["policies"].append(peak_search(srv, policy, models, mix, slo_ms, profiles, rates, args.duration, args.seed, args.connections, batching))
        finally:
            srv.stop()
        if args.step:
            elastic = next((p for p in results["policies"] if p["policy"] == "elastic"), None)
            low = (elastic["peak_rps"] if elastic and elastic["peak_rps"] else 60.0) / 4.5  # 3x = 2/3 of the peak
            print(f"rate step: {low:.1f} -> {3 * low:.1f} req/s with live re-planning", flush=True)
            results["step"] = step_experiment(repo, profiles_path, tmpd / "state-step", models, mix, slo_ms, low, args.seed, args.connections, batching)
    save_and_print(results, Path(args.out), args.tag or args.mix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
