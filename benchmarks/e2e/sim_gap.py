"""Where the simulator and the live server differ, per model: end-to-end p50/p99 live and
simulated on the same elastic plan and trace, and the compute time the workers measured per
batch against the profile the simulator uses.

    .venv/bin/python benchmarks/e2e/sim_gap.py [--rate 61] [--mix cnn:4,transformer:4,resnet:1]
        [--profiles benchmarks/e2e/cpu_profiles_example_models.json] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import plan_experiment as pe  # noqa: E402

from modelplex.core.demand import Demand  # noqa: E402
from modelplex.planning import plan as make_plan  # noqa: E402
from modelplex.profiling.storage import read_export  # noqa: E402
from modelplex.repository.examples import write_examples  # noqa: E402
from modelplex.repository.folders import load_model_config  # noqa: E402
from modelplex.sim.arrivals import TraceSpec, generate  # noqa: E402
from modelplex.sim.engine import SimConfig, Simulator  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=61.0, help="total request rate (req/s)")
    ap.add_argument("--mix", default="cnn:4,transformer:4,resnet:1")
    ap.add_argument("--profiles", default=str(HERE / "cpu_profiles_example_models.json"))
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    mix = pe.parse_mix(args.mix)
    models = sorted(mix)
    weights = np.array([mix[m] for m in models]) / sum(mix.values())
    per_model = [float(args.rate * w) for w in weights]
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        write_examples(repo)
        for d in repo.iterdir():
            if d.name not in mix:
                shutil.rmtree(d)
        configs = {m: load_model_config(repo, m) for m in models}
        slo = {m: float(c.batching.slo_ms or 100.0) for m, c in configs.items()}
        profiles = [p for p in read_export(Path(args.profiles)) if p.model in mix]
        plan = make_plan([Demand(m, r, slo[m]) for m, r in zip(models, per_model)], profiles, [pe.CPU], policy="elastic")
        srv = pe.start_server(repo, Path(tmp) / "state", ["--policy", "elastic", "--profiles", args.profiles, "--no-replan", "--cpus", "0-1"])
        try:
            pe.post_plan(srv, plan)
            time.sleep(0.5)
            times, idx = generate(TraceSpec("poisson"), per_model, args.duration, np.random.default_rng(1))
            res = asyncio.run(pe.run_trace(srv, models, times, idx, 48))
            stats = {m: srv.get_json(f"/v2/models/{m}/stats")["model_stats"][0] for m in models}
        finally:
            srv.stop()
    raw = Simulator(plan, profiles, slo, SimConfig(seed=1), {m: c.batching for m, c in configs.items()}).run_raw((times, idx))
    lat, mi, st = np.array(res.latency_s) * 1e3, np.array(res.model_index), np.array(res.status)
    sizes = {a.model: (s.slice.size, list(s.slice.cpus)) for s in plan.slices for a in s.assignments}
    print(f"elastic plan at {args.rate:g} req/s: " + "; ".join(f"{s.slice_id} cores {list(s.slice.cpus)}: "
          + ", ".join(f"{a.model} (batch {a.batch})" for a in s.assignments) for s in plan.slices))
    print("\n| model | live p50 / p99 ms | sim p50 / p99 ms | batch | batches run | worker compute ms (live) | profile p50 ms |")
    print("|---|---|---|---|---|---|---|")
    for k, m in enumerate(models):
        live = lat[(mi == k) & (st == 200)]
        sim = raw.latency[idx == k] * 1e3
        prof = next(p for p in profiles if p.model == m)
        for b in stats[m]["batch_stats"]:
            c = b["compute_infer"]
            print(f"| {m} | {np.percentile(live, 50):.2f} / {np.percentile(live, 99):.2f} | {np.percentile(sim, 50):.2f} / "
                  f"{np.percentile(sim, 99):.2f} | {b['batch_size']} | {c['count']} | {c['ns'] / max(1, c['count']) / 1e6:.2f} | "
                  f"{prof.latency_ms(sizes[m][0], int(b['batch_size'])):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
