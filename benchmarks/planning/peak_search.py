"""Peak-search experiment: per scenario and policy, the highest total rate a policy places on K
devices whose simulated SLO attainment is >= 99 % (open-loop Poisson, warm-up excluded).

    .venv/bin/python benchmarks/planning/peak_search.py            # GPU (synthetic) + CPU
    .venv/bin/python benchmarks/planning/peak_search.py --profiles cpu_profiles.json

1. bisection on the planner alone: the largest rate whose plan leaves nothing unserved (1 %);
2. simulate that plan at that rate; while attainment < 99 %, lower the rate 3 % and re-plan.
Results go to results.json and the table in README.md (between the RESULTS markers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from modelplex.core import Demand, DeviceKind, DeviceSpec, InvalidArgumentError, Profile
from modelplex.planning import PlannerConfig, plan
from modelplex.planning.optimal import solve_optimal
from modelplex.planning.specs import profiles_from_data
from modelplex.planning.synthetic import MODELS, cpu_profile, gpu_profiles
from modelplex.sim import SimConfig, Simulator, TraceSpec, generate

sys.path.insert(0, str(Path(__file__).parent))
from scenarios import CPU_SCENARIOS, SCENARIOS, Scenario, profiles_for, write_readme_section  # noqa: E402

HERE = Path(__file__).parent
POLICIES = ("exclusive", "temporal", "elastic", "optimal")


def demands(sc: Scenario, total: float, slos: dict[str, float]) -> list[Demand]:
    return [Demand(name, total * w, slos[name]) for (name, _), w in zip(sc.models, sc.weights())]


def feasible_plan(sc, policy, total, profs, devices, slos, cfg):
    try:
        if policy == "optimal":
            res = solve_optimal(demands(sc, total, slos), profs, devices, cfg)
            return res.plan, res.status
        return plan(demands(sc, total, slos), profs, devices, policy, cfg), "ok"
    except InvalidArgumentError:
        return None, "error"


def simulate_ok(p, sc, total, profs, slos, sim_s, seed=1) -> float:
    dem = demands(sc, total, slos)
    sim = Simulator(p, profs, {d.model: d.slo_ms for d in dem}, SimConfig(seed=seed, warmup_s=sim_s * 0.25))
    trace = generate(TraceSpec("poisson"), sim.rates_rps({d.model: d.rate_rps for d in dem}), sim_s, np.random.default_rng(seed))
    return sim.run(trace, sim_s).total.attainment


def peak(sc: Scenario, policy: str, profs: list[Profile], devices: list[DeviceSpec], slos: dict[str, float], cfg: PlannerConfig, sim_s: float) -> dict:
    t0 = time.perf_counter()
    status = "OPTIMAL"

    def fits(total: float) -> bool:
        nonlocal status
        p, st = feasible_plan(sc, policy, total, profs, devices, slos, cfg)
        if policy == "optimal":
            status = st if st != "OPTIMAL" else status  # remember any solve not proven optimal
        return p is not None and not p.unserved

    lo, hi = 0.0, 100.0
    while fits(hi) and hi < 1e8:
        lo, hi = hi, hi * 2
    while hi - lo > 0.01 * max(lo, 1.0):
        mid = (lo + hi) / 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    total = lo
    attain = 0.0
    p = None
    for _ in range(20):
        if total <= 0:
            break
        p, _ = feasible_plan(sc, policy, total, profs, devices, slos, cfg)
        attain = simulate_ok(p, sc, total, profs, slos, sim_s) if p is not None else 0.0
        if attain >= 0.99:
            break
        total *= 0.97
    return {
        "scenario": sc.name,
        "policy": policy,
        "planner_peak_rps": round(lo, 1),
        "peak_rps": round(total, 1) if attain >= 0.99 else 0.0,
        "attainment": round(attain, 4),
        "devices_used": len(p.devices) if p is not None else 0,
        "solver": status if policy == "optimal" else "",
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def run_set(label: str, scenarios, base_profiles, devices, sim_s: float, cfg: PlannerConfig) -> list[dict]:
    rows = []
    for sc in scenarios:
        profs = profiles_for(sc, base_profiles)
        have = {p.model for p in profs}
        if any(name not in have for name, _ in sc.models):
            print(f"skip {sc.name}: no profile for some model", flush=True)
            continue
        slos = {name: slo_for(src, base_profiles, devices) for name, src in sc.models}
        for policy in POLICIES:
            row = peak(sc, policy, profs, devices, slos, cfg, sim_s)
            row["set"] = label
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def slo_for(model: str, profiles: list[Profile], devices: list[DeviceSpec]) -> float:
    if model in MODELS:
        return MODELS[model].slo_ms
    # a measured model the reference does not list: 10 x its batch-1 latency on a whole device
    prof = next(p for p in profiles if p.model == model)
    return round(10 * prof.latency_ms(devices[0].capacity, 1), 1)


def table(rows: list[dict]) -> str:
    out = []
    for label in dict.fromkeys(r["set"] for r in rows):
        sub = [r for r in rows if r["set"] == label]
        out.append(f"\n**{label}**\n")
        out.append("| scenario | " + " | ".join(f"{p} peak rps (devices)" for p in POLICIES) + " | elastic / temporal | elastic vs optimal |")
        out.append("|---" * (len(POLICIES) + 3) + "|")
        for sc in dict.fromkeys(r["scenario"] for r in sub):
            by = {r["policy"]: r for r in sub if r["scenario"] == sc}
            cells = [f"{by[p]['peak_rps']:,.0f} ({by[p]['devices_used']})" + (" *" if by[p].get("solver") not in ("", "OPTIMAL") else "") for p in POLICIES if p in by]
            e, t, o = by["elastic"]["peak_rps"], by["temporal"]["peak_rps"], by["optimal"]["peak_rps"]
            gain = f"{e / t:.2f}x" if t else "n/a"
            gap = f"{100 * (e - o) / o:+.1f} %" if o else "n/a"
            out.append(f"| {sc} | " + " | ".join(cells) + f" | {gain} | {gap} |")
        gains = [r_e["peak_rps"] / r_t["peak_rps"] for sc in dict.fromkeys(r["scenario"] for r in sub)
                 for r_e in sub if r_e["scenario"] == sc and r_e["policy"] == "elastic"
                 for r_t in sub if r_t["scenario"] == sc and r_t["policy"] == "temporal" and r_t["peak_rps"]]
        if gains:
            out.append(f"\nMean elastic / temporal: **{sum(gains) / len(gains):.2f}x** over {len(gains)} scenarios.")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=4, help="K: GPUs (MPS) per scenario")
    ap.add_argument("--cpu-hosts", type=int, default=2, help="CPU hosts per scenario")
    ap.add_argument("--cpu-cores", type=int, default=8, help="cores per CPU host")
    ap.add_argument("--profiles", help="measured CPU profiles JSON (else a synthetic CPU set)")
    ap.add_argument("--sim-s", type=float, default=1.0, help="simulated seconds per check")
    ap.add_argument("--skip-gpu", action="store_true")
    ap.add_argument("--time-limit", type=float, default=20.0, help="optimal: CP-SAT limit per solve (s)")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--readme", default=str(HERE / "README.md"))
    args = ap.parse_args()
    cfg = PlannerConfig(time_limit_s=args.time_limit)
    rows: list[dict] = []
    if not args.skip_gpu:
        gpus = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(args.gpus)]
        rows += run_set(f"GPU-like, synthetic H100 profiles, K = {args.gpus} GPUs (MPS)", SCENARIOS, gpu_profiles(), gpus, args.sim_s, cfg)
    if args.profiles:
        cpu_profs = profiles_from_data(json.loads(Path(args.profiles).read_text()))
        cpu_profs = [p for p in cpu_profs if p.device_kind == "cpu"]
        cores = max(max(p.slice_sizes()) for p in cpu_profs)
        label = f"CPU, measured profiles ({args.profiles}), {args.cpu_hosts} hosts x {cores} cores"
        names = sorted({p.model for p in cpu_profs})
        scenarios = [Scenario("all measured models", tuple((n, n) for n in names))]
    else:
        cores = args.cpu_cores
        cpu_profs = [cpu_profile(n, cores) for n in MODELS]
        label = f"CPU, SYNTHETIC analytic profiles (no measured file given), {args.cpu_hosts} hosts x {cores} cores"
        scenarios = list(CPU_SCENARIOS)
    cpus = [DeviceSpec(f"cpu{i}", DeviceKind.CPU, cores) for i in range(args.cpu_hosts)]
    rows += run_set(label, scenarios, cpu_profs, cpus, max(args.sim_s, 2.0), cfg)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    text = table(rows)
    print(text)
    write_readme_section("RESULTS", text, Path(args.readme))
    return 0


if __name__ == "__main__":
    sys.exit(main())
