"""`modelplex bench CONFIG.yaml`: open-loop load from a few lines of YAML against a running
server or one it starts; a table on stdout, bench.json and PNG plots in --out."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelplex.bench.config import BenchConfig
    from modelplex.bench.target import Target

log = logging.getLogger(__name__)


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("bench", help="load-test a server from a YAML config (rates, arrivals, SLOs); "
                       "report goodput, latency percentiles and rejections")
    p.add_argument("config", help="bench YAML (see examples/bench.yaml)")
    p.add_argument("--out", default="", help="folder for bench.json and the plots (default: bench-<config name>)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from modelplex.bench.config import load_config
    from modelplex.bench.target import check_repository, open_target

    path = Path(args.config)
    config = load_config(path)  # the whole config is checked before anything starts
    check_repository(config)
    out = Path(args.out) if args.out else Path(f"bench-{path.stem}")
    target = open_target(config, out / "server")
    try:
        return _run(args, path, config, target, out)
    finally:
        target.stop()


def _run(args: argparse.Namespace, path: Path, config: "BenchConfig", target: "Target", out: Path) -> int:
    from modelplex.bench.report import plot, print_table, write_json
    from modelplex.bench.runner import run_rungs
    from modelplex.bench.target import build_request, metadata

    metas = metadata(target, config)  # every model exists on the target, before any load
    requests = [build_request(target, config, m, meta, config.seed + k)
                for k, (m, meta) in enumerate(zip(config.models, metas))]
    log.info("bench %s: %d model(s), %d rate(s) of %.1f s against %s", path, len(config.models),
             max(config.rungs, 1), config.duration_s, target.url)
    started = time.time()
    result = asyncio.run(run_rungs(target, config, requests, quiet=args.quiet))
    print_table(result.rungs, sys.stdout)
    png = plot(out / "bench.png", result.rungs)
    meta = {
        "config": str(path), "target": config.url or f"{target.url} (started on {config.repository})",
        "protocol": f"http-{config.protocol}", "arrival": config.arrival,
        "cv": config.cv if config.arrival == "gamma" else None,
        "trace": str(config.trace.path) if config.trace else None, "seed": config.seed,
        "duration_s": config.duration_s, "max_in_flight": config.max_in_flight, "timeout_s": config.timeout_s,
        "late_ms": config.late_s * 1e3, "started_unix": round(started, 3), "client_s": round(result.client_s, 3),
        "warmup_requests": result.warmup, "server_counts": result.server, "plot": str(png),
    }
    doc = write_json(out / "bench.json", meta, result.rungs)
    print(f"wrote {doc} and {png}")
    return 0
