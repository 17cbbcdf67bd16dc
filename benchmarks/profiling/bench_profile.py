"""Profiling benchmark: the four example models x 2 CPU slice sizes x 7 batches, run twice.

Reports the wall time of each full run (target <= 5 min), the spread of the p50 medians between
the two runs (target <= 5%), the latency model's leave-one-out error (target <= 10% median) and,
with --interference, the interference model's leave-one-pair-out error. Writes results.json and
cpu_profiles.json (an export, with interference features when fitted; read by the planning benchmarks) beside this file.

    .venv/bin/python benchmarks/profiling/bench_profile.py [--interference] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

import modelplex  # noqa: E402, F401  (sets ORT_DISABLE_TELEMETRY for the workers)
from modelplex.core.profile import Profile  # noqa: E402
from modelplex.profiling.storage import read_export  # noqa: E402
from modelplex.repository.examples import write_examples  # noqa: E402

HERE = Path(__file__).parent
BATCHES = "1,2,4,8,16,32,64"
SLICES = "1,2"


def profile_run(repo: Path, state: Path, out: Path, extra: list[str]) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "modelplex.cli", "profile", "--repository", str(repo), "--batches", BATCHES,
           "--slices", SLICES, "--state-dir", str(state), "--out", str(out), "--quiet", *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall_s = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"profile run failed: {proc.stderr.strip()}")
    return wall_s, proc.stdout


def spreads(a: list[Profile], b: list[Profile]) -> list[dict[str, object]]:
    """Relative difference of each point's p50 between two runs: |a-b| / mean(a, b)."""
    other = {p.model: p for p in b}
    out: list[dict[str, object]] = []
    for pa in a:
        pb = other[pa.model]
        pts_b = {(p.slice_size, p.batch): p for p in pb.points}
        for p in pa.points:
            q = pts_b[(p.slice_size, p.batch)]
            rel = abs(p.p50_ms - q.p50_ms) / ((p.p50_ms + q.p50_ms) / 2)
            out.append({"model": pa.model, "slice": p.slice_size, "batch": p.batch,
                        "p50_ms": [p.p50_ms, q.p50_ms], "spread": rel})
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interference", action="store_true", help="also fit the interference model (second run)")
    parser.add_argument("--keep", default="", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="modelplex-prof-bench-"))
    repo = work / "repo"
    write_examples(repo)
    wall1, out1 = profile_run(repo, work / "state1", work / "run1.json", [])
    wall2, out2 = profile_run(repo, work / "state2", work / "run2.json", [])
    run1, run2 = read_export(work / "run1.json"), read_export(work / "run2.json")
    sp = spreads(run1, run2)
    rel = [float(s["spread"]) for s in sp]  # type: ignore[arg-type]
    doc1 = json.loads((work / "run1.json").read_text())
    results: dict[str, object] = {
        "hardware": doc1["hardware"],
        "points": len(rel),
        "wall_s": [wall1, wall2],
        "median_spread": float(np.median(rel)),
        "p90_spread": float(np.quantile(rel, 0.9)),
        "max_spread": float(np.max(rel)),
        "within_5pct": sum(r <= 0.05 for r in rel) / len(rel),
        "latency_model_loo": [doc1["latency_model_loo"], json.loads((work / "run2.json").read_text())["latency_model_loo"]],
        "spreads": sp,
    }
    if args.interference:
        t0 = time.monotonic()
        _, out3 = profile_run(repo, work / "state2", work / "run2i.json", ["--interference", "--plot", str(HERE / "profiles.png")])
        results["interference_wall_s"] = time.monotonic() - t0
        results["interference"] = json.loads((work / "run2i.json").read_text()).get("interference", {})
        print(out3)
    # the export after the interference fit also carries each profile's "l2"/"dram" features
    export = work / ("run2i.json" if args.interference else "run1.json")
    (HERE / "cpu_profiles.json").write_text(export.read_text())
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(out1)
    print(f"wall time: {wall1:.1f} s and {wall2:.1f} s for {len(rel)} points")
    print(f"p50 spread between runs: median {results['median_spread']:.1%}, p90 {results['p90_spread']:.1%}, "
          f"max {results['max_spread']:.1%}; {results['within_5pct']:.0%} of points within 5%")
    worst = sorted(sp, key=lambda s: -float(s["spread"]))[:5]  # type: ignore[arg-type]
    for s in worst:
        print(f"  worst: {s['model']} slice {s['slice']} batch {s['batch']}: {s['p50_ms']} ms ({float(s['spread']):.1%})")  # type: ignore[arg-type]
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
