"""Planner speed: 100 models on 64 GPUs (target <= 1 s per plan).

    .venv/bin/python benchmarks/planning/bench_planner.py
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import replace

from modelplex.core import Demand, DeviceKind, DeviceSpec
from modelplex.planning import check_plan, plan
from modelplex.planning.synthetic import MODELS, gpu_profile


def instance(n_models: int = 100, seed: int = 0) -> tuple[list[Demand], list]:
    rng = random.Random(seed)
    names = sorted(MODELS)
    base = {n: gpu_profile(n) for n in names}
    demands, profiles = [], []
    for i in range(n_models):
        src = names[i % len(names)]
        name = f"{src}-{i}"
        profiles.append(replace(base[src], model=name))
        demands.append(Demand(name, rng.uniform(50, 3000), MODELS[src].slo_ms))
    return demands, profiles


def main() -> int:
    demands, profiles = instance()
    devices = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(64)]
    out = {}
    for policy in ("elastic", "temporal", "exclusive"):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            p = plan(demands, profiles, devices, policy)
            best = min(best, time.perf_counter() - t0)
        problems = check_plan(p, demands, profiles)
        out[policy] = {"seconds": round(best, 3), "devices_used": len(p.devices), "slices": len(p.slices), "unserved_models": len(p.unserved), "problems": len(problems)}
        print(policy, out[policy], flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
