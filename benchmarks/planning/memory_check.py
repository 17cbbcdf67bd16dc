"""Memory in the fit: plans on 11 GB-class GPUs (RTX 2080 Ti, gpu-let's testbed) with and
without memory accounting, each plan's largest per-GPU memory need counted the same way.

    .venv/bin/python benchmarks/planning/memory_check.py

Latency profiles are SYNTHETIC (planning/synthetic.py, an analytic H100: only the memory side is
the 2080 Ti's). Memory per model is gpu-let's released figure (shared/reference/gpulet.md), plus
0.01 B per MAC per sample of a batch, plus 1,230 MB of CUDA context per worker process. A plan
"without" memory is made on devices that state no memory and with no context, then measured by
the same rule; "with" is the planner's default on `gpu:N@rtx2080ti` (11,264 MB).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from modelplex.core import Demand, DeviceKind, DeviceSpec
from modelplex.core.plan import Plan
from modelplex.planning import PlannerConfig, check_plan, plan
from modelplex.planning.context import GPU_CONTEXT_MB
from modelplex.planning.specs import parse_devices
from modelplex.planning.synthetic import MODELS, gpu_profiles

sys.path.insert(0, str(Path(__file__).parent))
from scenarios import SCENARIOS, profiles_for, write_readme_section  # noqa: E402

CARD_MB = 11264


def worst_gpu_mb(p: Plan, mem: dict[str, tuple[float, float]]) -> float:
    """Largest per-GPU need: per slice, context x processes + models' memory + batch x activations."""
    per: dict[str, float] = {}
    for s in p.slices:
        need = GPU_CONTEXT_MB * s.processes + sum(s.processes * (mem[a.model][0] + a.batch * mem[a.model][1]) for a in s.assignments)
        per[s.slice.device_id] = per.get(s.slice.device_id, 0.0) + need
    return max(per.values(), default=0.0)


def main() -> int:
    rows = []
    base = gpu_profiles()
    for sc in SCENARIOS:
        profs = profiles_for(sc, base)
        mem = {p.model: (p.memory_mb, p.activation_mb_per_item) for p in profs}
        for rate in (500.0, 2000.0):
            dem = [Demand(name, rate, MODELS[src].slo_ms) for name, src in sc.models]
            blind_devices = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(64)]
            blind = plan(dem, profs, blind_devices, "elastic", PlannerConfig(context_mb=0.0))
            aware_devices = parse_devices("gpu:64@rtx2080ti")
            aware = plan(dem, profs, aware_devices, "elastic")
            row = {
                "scenario": sc.name, "rate_per_model_rps": rate,
                "without": {"gpus": len(blind.devices), "worst_gpu_mb": round(worst_gpu_mb(blind, mem))},
                "with": {"gpus": len(aware.devices), "worst_gpu_mb": round(worst_gpu_mb(aware, mem)),
                         "valid": not aware.unserved and not check_plan(aware, dem, profs)},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| scenario | rate/model (rps) | without memory: GPUs, worst GPU MB | with memory: GPUs, worst GPU MB |", "|---|---|---|---|"]
    for r in rows:
        w, a = r["without"], r["with"]
        over = " (over 11,264)" if w["worst_gpu_mb"] > CARD_MB else ""  # type: ignore[index, operator]
        lines.append(f"| {r['scenario']} | {r['rate_per_model_rps']:,.0f} | {w['gpus']}, {w['worst_gpu_mb']:,}{over} | {a['gpus']}, {a['worst_gpu_mb']:,} |")  # type: ignore[index]
    text = "\n".join(lines)
    print("\n" + text)
    write_readme_section("MEMORY", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
