"""The data path against in-process ONNX Runtime, on a small CNN, default settings, in one run.

    .venv/bin/python benchmarks/datapath/run.py [--duration 5] [--concurrency 1,8,32]
        [--clients http-binary,http-json,grpc] [--base-src DIR] [--mlserver VENV] [--label NAME]
        [--variant "NAME=SERVER ARGS" ...] [--rounds 3] [--server-args "ARGS"] [--slo-ms MS]

The server is started on a repository holding the model alone with no configuration file (what a
user gets with `modelplex serve --repository R`). The load generator runs in its own process, so
that the CPU time of the load generator, the frontend and every worker is measured apart: CPU µs
per request = that process's CPU seconds in the measured window / requests the server answered in
that window (its own statistics). `--base-src` also serves another checkout's `src` in the same run
(the before column of a before/after table). `--variant "both cores=--cpus 0-1"` also serves this
checkout with those `modelplex serve` arguments, in the same run (repeatable). `--server-args`
go to every modelplex server (this checkout, `--base-src`, the variants); `--slo-ms` writes the
model a config.yaml with that SLO, which a `--policy` needs (then each server profiles the model
on its first start, with the quick preset, before it is measured).
`--mlserver VENV` also measures MLServer's best configuration from that virtual environment
(benchmarks/datapath/mlserver_setup.sh makes it). Writes benchmarks/results/datapath[_LABEL].json.

`--rounds N` measures everything N times, each round in another order (rotated by one server per
round, in-process first in every round). Measured: on this VM, per-request CPU of every process
drifts up by 10-15 % over a run, so a fixed order favours whoever goes first (three servers of the
same code, one after another: 4303, 3920, 3857 req/s). The tables show each point's median round
and every round's req/s; the JSON keeps every row with its round.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1] / "tests" / "support")]

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import small_cnn  # noqa: E402
from run_serving import in_process  # noqa: E402
from procs import answered, cpu_seconds, load_process  # noqa: E402
from server import start_server  # noqa: E402

X = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)


def server_pids(srv_pid: int) -> dict[str, list[int]]:
    """The frontend and its worker processes (children that are not helper pools)."""
    front = psutil.Process(srv_pid)
    workers = [c.pid for c in front.children(recursive=True) if "modelplex.runtime.worker" in " ".join(c.cmdline())]
    return {"frontend": [srv_pid], "workers": workers}


def measure_point(target: dict[str, object], client: str, conc: int, duration_s: float, warmup_s: float,
                  count_answered: "Callable[[], int] | None", pids: dict[str, list[int]]) -> dict[str, object]:
    """One closed-loop point; CPU per process over the measured window, per request the server
    says it answered in that window (`count_answered` None: per request the load generator counted)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=load_process, args=(child, target, client, conc, duration_s, warmup_s, X))
    proc.start()
    time.sleep(warmup_s)
    n0, cpu0 = count_answered() if count_answered else 0, cpu_seconds({**pids, "loadgen": [proc.pid]})
    time.sleep(duration_s)
    n1, cpu1 = count_answered() if count_answered else 0, cpu_seconds({**pids, "loadgen": [proc.pid]})
    summary = parent.recv()
    proc.join(30)
    if count_answered is None:
        n1 = n0 + int(summary["requests"])
    done = max(1, n1 - n0)
    us = {k: round((cpu1[k] - cpu0[k]) / done * 1e6, 1) for k in cpu0}
    return {"client": client, "concurrency": conc, **summary, "server_answered": n1 - n0, "cpu_us_per_request": us}


def write_repo(root: Path, slo_ms: float | None = None) -> str:
    model = small_cnn.build(root / "models" / "small_cnn" / "1" / "model.onnx")
    if slo_ms is not None:
        (root / "models" / "small_cnn" / "config.yaml").write_text(f"slo_ms: {slo_ms}\n")
    return str(model)


def serve_points(args: argparse.Namespace, repo: Path, state: Path, src: str | None, extra: list[str] | None = None) -> list[dict[str, object]]:
    env = {"PYTHONPATH": str(Path(src).resolve())} if src else None
    srv = start_server(repo, state, [*args.server_args, *(extra or [])], timeout_s=600.0, env_extra=env)
    try:
        pids = server_pids(srv.proc.pid)

        target = {"host": "127.0.0.1", "port": srv.http_port, "grpc": srv.grpc_url, "model": "small_cnn"}
        rows = []
        for conc in args.concurrency:
            for client in args.clients:
                rows.append(measure_point(target, client, conc, args.duration, 1.0, lambda: answered(srv), pids))
                print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        srv.stop()


def _variant(text: str) -> tuple[str, list[str]]:
    name, sep, extra = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--variant wants NAME=SERVER ARGS, got {text!r}")
    return name.strip(), extra.split()


ServerRun = Callable[[int], "list[dict[str, object]]"]


def run_rounds(args: argparse.Namespace, root: Path, model_path: str) -> dict[str, list[dict[str, object]]]:
    """Every server's rows over `args.rounds` rounds, the order rotated each round; each row
    carries its round. Also the in-process baselines ("in_process": one row per callers and round)."""
    servers: list[tuple[str, ServerRun]] = [("modelplex", lambda r: serve_points(args, root / "models", root / f"state-{r}", None))]
    if args.base_src:
        servers.append(("modelplex_base", lambda r: serve_points(args, root / "models", root / f"state-base-{r}", args.base_src)))
    for i, (name, extra) in enumerate(args.variant):
        servers.append((f"modelplex ({name})", lambda r, i=i, extra=extra:
                        serve_points(args, root / "models", root / f"state-v{i}-{r}", None, extra)))
    if args.mlserver:
        from mlserver_run import mlserver_points

        servers.append(("mlserver", lambda r: mlserver_points(args, root, model_path, measure_point)))
    out: dict[str, list[dict[str, object]]] = {"in_process": [], **{name: [] for name, _ in servers}}
    for r in range(args.rounds):
        for callers in (1, 2):
            row = {"callers": callers, "round": r, **in_process(model_path, X, args.duration, 1, callers, own_sessions=True)}
            print(f"round {r + 1}/{args.rounds}, in-process: {json.dumps(row)}", flush=True)
            out["in_process"].append(row)
        shift = r % len(servers)
        for name, run in servers[shift:] + servers[:shift]:
            print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
            out[name] += [{**row, "round": r} for row in run(r)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per point")
    ap.add_argument("--concurrency", default="1,8,32", type=lambda s: [int(c) for c in s.split(",")])
    ap.add_argument("--clients", default="http-binary,http-json,grpc", type=lambda s: s.split(","))
    ap.add_argument("--base-src", help="also serve this checkout's src/ (before), in the same run")
    ap.add_argument("--mlserver", help="virtual environment with MLServer (mlserver_setup.sh)")
    ap.add_argument("--label", default="", help="suffix of the result file")
    ap.add_argument("--variant", action="append", default=[], type=_variant,
                    help='"NAME=SERVER ARGS": also serve this checkout with these arguments (repeatable)')
    ap.add_argument("--rounds", type=int, default=1, help="measure everything this many times, in a rotated order each round")
    ap.add_argument("--server-args", default=[], type=str.split, help='"ARGS" for every modelplex server, e.g. "--policy elastic"')
    ap.add_argument("--slo-ms", type=float, help="write the model a config.yaml with this slo_ms (a --policy needs one)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.slo_ms is not None and not args.slo_ms > 0:
        ap.error("--slo-ms must be positive")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_path = write_repo(root, args.slo_ms)
        report: dict[str, object] = {"cpus": os.cpu_count(), "rounds": args.rounds, "server_args": args.server_args,
                                     "slo_ms": args.slo_ms, **run_rounds(args, root, model_path)}
    out = HERE.parent / "results" / f"datapath{'_' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(report, indent=2))
    from report import print_tables

    print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
