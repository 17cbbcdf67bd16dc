"""Simulator speed: simulated requests per second of wall time (target >= 200,000).

    .venv/bin/python benchmarks/planning/bench_sim.py

Plans scenario S3 (resnet50 + vgg16 + mobilenetv2) on 4 synthetic H100s with elastic, then
simulates Poisson traffic at 50 % and 90 % of the planned rate, and at 150 % (overload).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from modelplex.core import Demand, DeviceKind, DeviceSpec
from modelplex.planning import plan
from modelplex.planning.synthetic import MODELS, gpu_profiles
from modelplex.sim import SimConfig, Simulator, TraceSpec, generate


def main() -> int:
    names = ["resnet50", "vgg16", "mobilenetv2"]
    profs = gpu_profiles(names)
    devices = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(4)]
    each = 15000.0
    dem = [Demand(n, each, MODELS[n].slo_ms) for n in names]
    p = plan(dem, profs, devices, "elastic")
    out = {}
    for load in (0.5, 0.9, 1.5):
        sim = Simulator(p, profs, {d.model: d.slo_ms for d in dem}, SimConfig(seed=1, warmup_s=0.5))
        trace = generate(TraceSpec("poisson"), sim.rates_rps({n: each * load for n in names}), 5.0, np.random.default_rng(1))
        t0 = time.perf_counter()
        r = sim.run(trace, 5.0)
        wall = time.perf_counter() - t0
        out[f"load {load:.0%}"] = {"requests": len(trace[0]), "wall_s": round(wall, 3), "req_per_s": round(len(trace[0]) / wall), "attainment": round(r.total.attainment, 4)}
        print(f"load {load:.0%}", out[f"load {load:.0%}"], flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
