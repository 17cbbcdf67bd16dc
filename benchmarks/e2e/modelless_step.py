"""Model-less serving under a 3x load step: a task query with a latency target and an accuracy
floor, served by the variant selection picks, while the autoscaler replicates or upgrades.
Reports SLO attainment per second, the autoscaler's decisions, the time to settle, and checks
that no response came from a variant below the floor.

    .venv/bin/python benchmarks/e2e/modelless_step.py [--low 25] [--latency-ms 100] [--min-accuracy 0.9]

Writes benchmarks/e2e/modelless_step.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
import orjson  # noqa: E402

import loadgen  # noqa: E402
from server import start_server  # noqa: E402

from modelplex.repository.examples import write_examples  # noqa: E402
from modelplex.repository.registry_variants import register  # noqa: E402
from modelplex.repository.store import Registry  # noqa: E402
from modelplex.repository.variants import Precision  # noqa: E402
from modelplex.sim.arrivals import TraceSpec, generate  # noqa: E402

TASK = "detection-demo"


class _VariantCall:
    """Sends the task query and records which variant answered (from the response header JSON)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes, seen: list[str]) -> None:
        self.reader, self.writer, self.raw, self.seen = reader, writer, raw, seen

    async def status(self) -> int:
        self.writer.write(self.raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        n = int(headers.get("inference-header-content-length", len(body)))
        if status == 200:
            self.seen.append(orjson.loads(body[:n])["parameters"]["variant"])
        return status


async def run(port: int, raw: bytes, times: np.ndarray, conns: int, seen: list[str]) -> loadgen.MixResult:
    calls = []
    for _ in range(conns):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        calls.append(_VariantCall(r, w, raw, seen))
    return await loadgen.open_loop_trace([calls], times, np.zeros(len(times), dtype=np.int32))  # type: ignore[list-item]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--low", type=float, default=25.0, help="rate before the step (req/s); 3x after")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--min-accuracy", type=float, default=0.9)
    ap.add_argument("--before-s", type=float, default=10.0)
    ap.add_argument("--after-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "modelless_step.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_examples(root / "examples")
        repo = root / "repo"
        (repo / "mlp").mkdir(parents=True)
        (root / "examples" / "mlp").rename(repo / "mlp")
        print("registering resnet (FP32 and INT8 variants, measured) ...", flush=True)
        with Registry(root / "state") as registry:
            register(registry, root / "examples" / "resnet" / "1" / "model.onnx", TASK, "resnet", create_task=True,
                     precisions=(Precision.FP32, Precision.INT8_STATIC))
        srv = start_server(repo, root / "state", ["--cpus", "0-1"])
        try:
            time.sleep(5.0)  # variants preload
            x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
            raw_x = x.tobytes()
            head = orjson.dumps({
                "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32", "parameters": {"binary_data_size": len(raw_x)}}],
                "parameters": {"latency_ms": args.latency_ms, "min_accuracy": args.min_accuracy, "binary_data_output": True},
            })
            raw = loadgen.http_request("127.0.0.1", srv.http_port, f"/v2/tasks/{TASK}/infer", head + raw_x, len(head))
            total_s = args.before_s + args.after_s
            times, _ = generate(TraceSpec("step", steps=((0.0, 1.0), (args.before_s, 3.0))), [args.low], total_s,
                                np.random.default_rng(args.seed))
            seen: list[str] = []
            res = asyncio.run(run(srv.http_port, raw, times, 64, seen))
            with urllib.request.urlopen(f"http://{srv.http_url}/v2/tasks", timeout=30) as r:
                tasks = json.loads(r.read())
        finally:
            srv.stop()
    sched, lat, st = np.array(res.sched_s), np.array(res.latency_s) * 1e3, np.array(res.status)
    timeline: list[dict[str, Any]] = []
    for t in np.arange(0.0, total_s, 1.0):
        w = (sched >= t) & (sched < t + 1)
        n = int(w.sum())
        ok = int((w & (st == 200) & (lat <= args.latency_ms)).sum())
        timeline.append({"t_s": float(t), "requests": n, "attainment": ok / n if n else 1.0,
                         "p99_ms": float(np.percentile(lat[w & (st == 200)], 99)) if (w & (st == 200)).any() else 0.0})
    after = [p for p in timeline if p["t_s"] >= args.before_s]
    settled = next((p["t_s"] for p in after if all(q["attainment"] >= 0.99 for q in after if q["t_s"] >= p["t_s"])), None)
    accuracy = {name: v["accuracy"] for name, v in tasks["variants"].items()}
    below = sum(1 for v in seen if (accuracy.get(v) or 0.0) < args.min_accuracy)
    tail = [p for p in after if settled is not None and p["t_s"] >= settled]
    report = {
        "low_rps": args.low, "high_rps": 3 * args.low, "latency_ms": args.latency_ms, "min_accuracy": args.min_accuracy,
        "requests": len(st), "lost": int((st == 0).sum()), "answered_below_floor": below,
        "variants_used": {v: seen.count(v) for v in sorted(set(seen))},
        "decisions": tasks["decisions"], "settled_s_after_step": None if settled is None else settled - args.before_s,
        "attainment_after_settling": (sum(p["attainment"] * p["requests"] for p in tail) / max(1, sum(p["requests"] for p in tail))) if tail else None,
        "timeline": timeline,
    }
    Path(args.out).write_text(json.dumps(report, indent=1))
    for p in timeline:
        print(f"t={p['t_s']:5.1f}s  {p['requests']:4d} req  {p['attainment']:7.2%} within {args.latency_ms:g} ms  p99 {p['p99_ms']:.1f} ms")
    print("\ndecisions:")
    for d in tasks["decisions"]:
        print(f"  {d['action']}: {d['reason']}")
    print(f"\nrequests {report['requests']}, lost {report['lost']}, answered below the floor {below}, variants {report['variants_used']}")
    print(f"settled (>= 99% every second from then on) {report['settled_s_after_step']} s after the step; "
          f"attainment after settling {report['attainment_after_settling']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
