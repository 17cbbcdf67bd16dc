"""GPUs needed: `--minimize-devices` against exclusive, temporal and elastic placement and a lower
bound, per scenario and rate, each plan replayed in the simulator (>= 99 % within SLO to count).

    .venv/bin/python benchmarks/planning/min_devices.py            # table + min_devices.json
    .venv/bin/python benchmarks/planning/min_devices.py --quick    # one rate, short simulations

Profiles are SYNTHETIC (planning/synthetic.py: an analytic H100 model, not measurements); MIG
profiles carry points for 1-4 processes per slice (segments), MPS ones one process. Devices:
A100-80GB cut into MIG instances (exact placement table), and H100s shared with MPS. Rates are
the same for every model of a scenario (apps: every app request hits every model once).

Simulator replay: Poisson arrivals at the *mean* demand rates, seeded, first 25 % excluded. A
slice with k processes (a segment) is simulated as the runtime serves it: one queue, up to k
batches at once, each taking the profile's k-process latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from modelplex.core import Demand, Profile
from modelplex.core.plan import Plan
from modelplex.planning import PlannerConfig, check_plan, plan, solve_min_devices
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import MODELS, gpu_profiles
from modelplex.sim import SimConfig, TraceSpec, generate, simulate

sys.path.insert(0, str(Path(__file__).parent))
from scenarios import SCENARIOS, Scenario, profiles_for, write_readme_section  # noqa: E402

HERE = Path(__file__).parent
ELEVEN = Scenario("11 models (9 + 2 copies)", tuple((n, n) for n in MODELS) + (("resnet50-b", "resnet50"), ("mobilenetv2-b", "mobilenetv2")))
ALL = (*SCENARIOS, ELEVEN)
KINDS = {"A100-80GB MIG": "mig:256@a100-80gb", "H100 MPS": "gpu:256@h100-80gb"}
POLICIES = ("exclusive", "temporal", "elastic")


def replay(p: Plan, profiles: list[Profile], dem: list[Demand], sim_s: float, seed: int = 1) -> float:
    """Share of requests answered within SLO, simulated at the mean demand rates."""
    slo = {d.model: d.slo_ms for d in dem}
    rate = {d.model: d.rate_rps for d in dem}
    order = sorted(slo)
    trace = generate(TraceSpec("poisson"), [rate[m] for m in order], sim_s, np.random.default_rng(seed))
    res = simulate(p, profiles, slo, trace, sim_s, SimConfig(seed=seed, warmup_s=sim_s * 0.25))
    return float(res.total.attainment)


def run_case(sc: Scenario, rate: float, kind: str, sim_s: float, cfg: PlannerConfig) -> dict[str, object]:
    base = gpu_profiles(None, mig_processes=(1, 2, 3, 4))
    profs = profiles_for(sc, base)
    dem = [Demand(name, rate * w, MODELS[src].slo_ms) for (name, src), w in zip(sc.models, [1.0] * len(sc.models))]
    devices = parse_devices(KINDS[kind])
    row: dict[str, object] = {"scenario": sc.name, "rate_per_model_rps": rate, "devices": kind}
    for policy in POLICIES:
        p = plan(dem, profs, devices, policy, cfg)
        ok = not p.unserved and not check_plan(p, dem, profs, cfg)
        row[policy] = {"gpus": len(p.devices), "valid": ok, "attainment": round(replay(p, profs, dem, sim_s), 4) if ok else 0.0}
    t0 = time.perf_counter()
    res = solve_min_devices(dem, profs, devices, cfg)
    wall = time.perf_counter() - t0
    ok = not res.plan.unserved and not check_plan(res.plan, dem, profs, cfg)
    row["min-devices"] = {
        "gpus": res.devices, "valid": ok, "attainment": round(replay(res.plan, profs, dem, sim_s), 4) if ok else 0.0,
        "plan_s": round(wall, 2), "source": res.source, "exact": res.exact_status,
        "segments": sum(1 for s in res.plan.slices if s.processes > 1),
    }
    row["lower_bound"] = res.lower_bound
    row["bound_devices"] = res.bound_devices
    print(json.dumps(row), flush=True)
    return row


def cell(r: dict[str, object]) -> str:
    ok = r["valid"] and float(r["attainment"]) >= 0.99  # type: ignore[arg-type]
    return f"{r['gpus']}" if ok else f"{r['gpus']} ✗ ({100 * float(r['attainment']):.1f} %)"  # type: ignore[arg-type]


def table(rows: list[dict[str, object]]) -> str:
    head = "| scenario | rate/model (rps) | GPUs | exclusive | temporal | elastic | min-devices | bound | gap | plan s | segments |"
    out = [head, "|---" * 11 + "|"]
    for r in rows:
        md = r["min-devices"]
        assert isinstance(md, dict)
        out.append(
            f"| {r['scenario']} | {float(r['rate_per_model_rps']):,.0f} | {r['devices']} | "  # type: ignore[arg-type]
            + " | ".join(cell(r[p]) for p in POLICIES)  # type: ignore[arg-type]
            + f" | {cell(md)} | {r['lower_bound']} ({r['bound_devices']}) | {int(md['gpus']) - int(r['lower_bound'])} | {md['plan_s']} | {md['segments']} |"  # type: ignore[call-overload]
        )
    per = {k: [r for r in rows if r["devices"] == k] for k in KINDS}
    for k, sub in per.items():
        if sub:
            tot = {p: sum(int(r[p]["gpus"]) for r in sub) for p in (*POLICIES, "min-devices")}  # type: ignore[index]
            lb = sum(int(r["lower_bound"]) for r in sub)  # type: ignore[call-overload]
            gaps = [int(r["min-devices"]["gpus"]) - int(r["lower_bound"]) for r in sub]  # type: ignore[index, call-overload]
            spread = ", ".join(f"{g} in {gaps.count(g)}" for g in sorted(set(gaps)))
            secs = [float(r["min-devices"]["plan_s"]) for r in sub]  # type: ignore[index]
            eleven = [float(r["min-devices"]["plan_s"]) for r in sub if r["scenario"] == ELEVEN.name]  # type: ignore[index]
            out.append(f"\n{k}, all {len(sub)} cases: " + ", ".join(f"{p} {n}" for p, n in tot.items()) + f", bound {lb}; "
                       f"gap {spread} cases; plan time max {max(secs):.2f} s" + (f", 11 models max {max(eleven):.2f} s." if eleven else "."))
    out.append("\n✗ = the plan is not counted (invalid, or < 99 % within SLO in the simulator; attainment shown).")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one rate, 0.5 s simulations")
    ap.add_argument("--sim-s", type=float, default=1.0, help="simulated seconds per plan")
    ap.add_argument("--rates", default="2000,20000,60000", help="per-model rates (rps), comma-separated")
    ap.add_argument("--time-limit", type=float, default=5.0, help="CP-SAT limit per exact solve (s)")
    ap.add_argument("--out", default=str(HERE / "min_devices.json"))
    ap.add_argument("--from-json", action="store_true", help="only print (and write to the README) the table of --out")
    args = ap.parse_args()
    if args.from_json:
        text = table(json.loads(Path(args.out).read_text()))
        print(text)
        write_readme_section("MINDEV", text)
        return 0
    rates = [float(x) for x in args.rates.split(",")][:1 if args.quick else None]
    sim_s = 0.5 if args.quick else args.sim_s
    cfg = PlannerConfig(time_limit_s=args.time_limit, max_batch=128)
    rows = [run_case(sc, rate, kind, sim_s, cfg) for kind in KINDS for sc in ALL for rate in rates]
    Path(args.out).write_text(json.dumps(rows, indent=1))
    text = table(rows)
    print(text)
    if not args.quick:
        write_readme_section("MINDEV", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
