"""How the server cut the load into batches: rows per batch at each point, beside req/s and p50.

    .venv/bin/python benchmarks/datapath/batch_sizes.py [--concurrency 1,8] [--clients http-binary,http-json]
        [--duration 4] [--base-src DIR]

Serves the data-path model (datapath/small_cnn.py, default settings) with this checkout and,
with `--base-src`, another checkout's `src`, one after the other; for each point it reads the
model's batch statistics (KServe's `batch_stats`) before and after the measured window and
prints how many batches of each size ran. Made to see why polling for answers (runtime.loop_poll)
must be limited to one request at a time: with more in flight, answering sooner splits batches
unevenly (benchmarks/README.md, "Polling").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from run import measure_point, server_pids, start_server, write_repo  # noqa: E402


def batch_counts(srv: object) -> dict[int, int]:
    doc = srv.get_json("/v2/models/small_cnn/stats")["model_stats"][0]  # type: ignore[attr-defined]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in doc.get("batch_stats", [])}


def serve(args: argparse.Namespace, root: Path, label: str, src: str | None) -> None:
    env = {"PYTHONPATH": str(Path(src).resolve())} if src else None
    srv = start_server(root / "models", root / f"state-{label}", [], timeout_s=600.0, env_extra=env)
    try:
        pids = server_pids(srv.proc.pid)
        target = {"host": "127.0.0.1", "port": srv.http_port, "grpc": srv.grpc_url, "model": "small_cnn"}
        for conc in args.concurrency:
            for client in args.clients:
                before = batch_counts(srv)
                row = measure_point(target, client, conc, args.duration, 1.0, None, pids)
                after = batch_counts(srv)
                sizes = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after)}
                sizes = {k: v for k, v in sizes.items() if v}
                batches = sum(sizes.values())
                mean = sum(k * v for k, v in sizes.items()) / max(1, batches)
                print(f"{label:<16} {client:<12} {conc:>3} in flight: {row['rps']:7.0f} req/s, p50 {row['p50_ms']:.3f} ms; "
                      f"{batches} batches, {mean:.2f} rows each; by rows: {json.dumps(sizes)}", flush=True)
    finally:
        srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", default="1,8", help="requests in flight, comma-separated")
    p.add_argument("--clients", default="http-binary,http-json", help="http-binary, http-json, grpc")
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per point")
    p.add_argument("--base-src", help="another checkout's src, served after this one")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.clients = args.clients.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_repo(root)
        serve(args, root, "modelplex", None)
        if args.base_src:
            serve(args, root, "base", args.base_src)


if __name__ == "__main__":
    main()
