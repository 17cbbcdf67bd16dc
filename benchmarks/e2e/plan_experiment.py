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
from modelplex.profiling.storage import read_export  # noqa: E402
from modelplex.repository.examples import example_inputs, write_examples  # noqa: E402
from modelplex.repository.store import load_model_config  # noqa: E402
from modelplex.sim.arrivals import TraceSpec, generate  # noqa: E402
from modelplex.sim.engine import SimConfig, simulate  # noqa: E402

WARMUP_S = 1.0
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
                profiles: list[Any], rates: list[float], duration_s: float, seed: int, conns: int) -> dict[str, Any]:
    weights = np.array([mix[m] for m in models]) / sum(mix[m] for m in models)
    points = []
    peak = 0.0
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
        times, idx = generate(TraceSpec("poisson"), per_model, WARMUP_S + duration_s, rng)
        res = asyncio.run(run_trace(srv, models, times, idx, conns))
        live = live_summary(res, models, slo_ms, WARMUP_S, WARMUP_S + duration_s)
        sim = simulate(plan, profiles, slo_ms, (times, idx), WARMUP_S + duration_s, SimConfig(seed=seed, warmup_s=WARMUP_S)).total
        point.update(
            live=live,
            sim={"attainment": sim.attainment, "p50_ms": sim.p50_ms, "p99_ms": sim.p99_ms},
            slices=len(plan.slices),
            unserved_rps=sum(plan.unserved.values()),
        )
        points.append(point)
        print(f"  {policy} {total:7.1f} req/s: live {live['attainment']:.2%} in SLO (p99 {live['p99_ms']:.1f} ms), "
              f"sim {sim.attainment:.2%} (p99 {sim.p99_ms:.1f} ms), {len(plan.slices)} slices", flush=True)
        if live["attainment"] < 0.99:
            break
        peak = total
    return {"policy": policy, "peak_rps": peak, "points": points}


def step_experiment(repo: Path, profiles_path: Path, state: Path, models: list[str], mix: dict[str, float],
                    slo_ms: dict[str, float], low_rps: float, seed: int, conns: int) -> dict[str, Any]:
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
    after = [p for p in timeline if p["t_s"] >= 10.0]
    recovered = next((p["t_s"] for p in after if p["attainment"] >= 0.99 and all(q["attainment"] >= 0.99 for q in after if q["t_s"] >= p["t_s"])), None)
    total = live_summary(res, models, slo_ms, 0.0, 25.0)
    return {"low_rps": low_rps, "high_rps": 3 * low_rps, "replans": replans, "timeline": timeline,
            "lost": total["lost"], "answered_or_rejected": total["requests"] - total["lost"], "requests": total["requests"],
            "recovered_at_s": recovered, "run_started_monotonic": t_start}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0, help="measured seconds per rate")
    ap.add_argument("--policies", default="elastic,temporal")
    ap.add_argument("--mix", default="mlp:4,cnn:4,transformer:4,resnet:1", help="model:weight of the traffic")
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
        profiles_path = Path(args.profiles) if args.profiles else tmpd / "profiles.json"
        if not args.profiles:
            print("profiling the models on this machine ...", flush=True)
            subprocess.run([sys.executable, "-m", "modelplex.cli", "profile", "--repository", str(repo), "--batches", "1,2,4,8,16",
                            "--slices", "1,2", "--state-dir", str(tmpd / "pstate"), "--out", str(profiles_path), "--quiet"], check=True)
        profiles = [p for p in read_export(profiles_path) if p.model in mix]
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [25.0 * 1.25 ** k for k in range(16)]
        srv = start_server(repo, tmpd / "state", ["--policy", "elastic", "--profiles", str(profiles_path), "--no-replan",
                                                  "--cpus", "0-1"])
        results: dict[str, Any] = {"mix": mix, "slo_ms": slo_ms, "duration_s": args.duration, "policies": []}
        try:
            for policy in args.policies.split(","):
                print(f"peak search: {policy}", flush=True)
                results["policies"].append(peak_search(srv, policy, models, mix, slo_ms, profiles, rates, args.duration, args.seed, args.connections))
        finally:
            srv.stop()
        if args.step:
            elastic = next((p for p in results["policies"] if p["policy"] == "elastic"), None)
            low = (elastic["peak_rps"] if elastic and elastic["peak_rps"] else 60.0) / 3.5
            print(f"rate step: {low:.1f} -> {3 * low:.1f} req/s with live re-planning", flush=True)
            results["step"] = step_experiment(repo, profiles_path, tmpd / "state-step", models, mix, slo_ms, low, args.seed, args.connections)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("\n| policy | peak rate within SLO (req/s) | live p99 at peak (ms) | simulator attainment at peak | simulator p99 (ms) |")
    print("|---|---|---|---|---|")
    for p in results["policies"]:
        at = next((pt for pt in p["points"] if pt["rate_rps"] == p["peak_rps"]), None)
        if at and "live" in at:
            print(f"| {p['policy']} | {p['peak_rps']:.1f} | {at['live']['p99_ms']:.1f} | {at['sim']['attainment']:.2%} | {at['sim']['p99_ms']:.1f} |")
        else:
            print(f"| {p['policy']} | {p['peak_rps']:.1f} | - | - | - |")
    peaks = {p["policy"]: p["peak_rps"] for p in results["policies"]}
    if peaks.get("temporal"):
        print(f"\nelastic / temporal = {peaks.get('elastic', 0) / peaks['temporal']:.2f}")
    if "step" in results:
        s = results["step"]
        print(f"\nstep {s['low_rps']:.1f} -> {s['high_rps']:.1f} req/s: {s['requests']} requests, {s['lost']} lost, "
              f"re-plans {[r['reason'] for r in s['replans']]}, >=99% again from t={s['recovered_at_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
