"""Serving throughput and latency of this checkout against an earlier one, in one run.

    git worktree add ../modelplex-base <commit>      # the version to compare against
    .venv/bin/python benchmarks/compare_serving.py --base-src ../modelplex-base/src [--rounds 2]

Both servers serve the example CNN alone as two 1-core slices (as run_serving.py does), one at a
time, alternating (base, this, base, this, ...) so that drift of the machine hits both; each
point is measured `--rounds` times per server and the median reported. Writes
benchmarks/results/compare_serving.json and prints a markdown table with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

from run_serving import measure  # noqa: E402
from server import start_server  # noqa: E402


def serve_and_measure(repo: Path, state: Path, src: Path | None, x: np.ndarray, conc: list[int], duration_s: float) -> list[dict[str, object]]:
    env = {"PYTHONPATH": str(src.resolve())} if src is not None else None
    srv = start_server(repo, state, ["--cpus", "0-1"], env_extra=env)
    try:
        return asyncio.run(measure(("127.0.0.1", srv.http_port), srv.grpc_url, x, conc, duration_s))
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-src", required=True, help="the src/ folder of the checkout to compare against")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds measured per point")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per server and point (median reported)")
    ap.add_argument("--out", default=str(HERE / "results" / "compare_serving.json"))
    args = ap.parse_args()
    base_src = Path(args.base_src)
    if not (base_src / "modelplex" / "__init__.py").is_file():
        print(f"compare_serving: {base_src} is not a src/ folder holding modelplex", file=sys.stderr)
        return 2
    conc = [int(c) for c in args.concurrency.split(",")]
    from modelplex.repository.examples import write_examples

    runs: dict[str, list[list[dict[str, object]]]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        write_examples(repo)
        for other in repo.iterdir():
            if other.name != "cnn":
                shutil.rmtree(other)
        (repo / "cnn" / "config.yaml").write_text("task: image-classification\ninstances: 2\n")
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        for r in range(args.rounds):
            for name, src in (("base", base_src), ("this", None)):
                print(f"round {r + 1}: {name}", flush=True)
                runs[name].append(serve_and_measure(repo, Path(tmp) / f"state-{name}-{r}", src, x, conc, args.duration))
    table = []
    for i, point in enumerate(runs["this"][0]):
        row: dict[str, object] = {"client": point["client"], "concurrency": point["concurrency"]}
        for name in ("base", "this"):
            for key in ("rps", "p50_ms", "p99_ms"):
                row[f"{name}_{key}"] = statistics.median(float(run[i][key]) for run in runs[name])  # type: ignore[arg-type]
        table.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rounds": runs, "median": table}, indent=1))
    print("\n| client | in flight | base req/s | this req/s | ratio | base p50 ms | this p50 ms | ratio | base p99 ms | this p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        b, t = float(row["base_rps"]), float(row["this_rps"])  # type: ignore[arg-type]
        bp, tp = float(row["base_p50_ms"]), float(row["this_p50_ms"])  # type: ignore[arg-type]
        print(f"| {row['client']} | {row['concurrency']} | {b:.0f} | {t:.0f} | {t / b:.3f} | {bp:.2f} | {tp:.2f} | {tp / bp:.3f} "
              f"| {float(row['base_p99_ms']):.2f} | {float(row['this_p99_ms']):.2f} |")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
