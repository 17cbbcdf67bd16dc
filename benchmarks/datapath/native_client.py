"""Binary HTTP against gRPC with a native client: Triton's perf_analyzer (C++) drives the server,
so that neither protocol is measured through a Python client (run.py's Python gRPC client costs
five to ten times its HTTP client's CPU per request on the same cores; perf_analyzer's own CPU
per request is in the table too).

    bash benchmarks/datapath/perf_analyzer_setup.sh ../perf-analyzer          # once
    .venv/bin/python benchmarks/datapath/native_client.py --perf-analyzer ../perf-analyzer \
        [--concurrency 1,8,32] [--rounds 3] [--seconds 4] [--base-src DIR] [--label NAME]

The server is the same as run.py's (the small CNN alone, no configuration file, default
settings), one per round; in each round every protocol is measured at every concurrency, the
protocols' order rotated each round. perf_analyzer sends HTTP requests as binary tensors (the
KServe binary extension) and gRPC requests as raw_input_contents, batch 1, and reports its
throughput and p50 over its last windows once three in a row agree within 30 % (its default 10 %
was not reached within its trials on this VM); CPU µs per request by process are over its whole
run, per request the server says it answered. `--base-src DIR` also serves another checkout's
`src` in every round (the two servers' order rotated each round; its rows are named
`modelplex_base ...`). Writes benchmarks/results/datapath_native[_LABEL].json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "tests" / "support")]

import small_cnn  # noqa: E402
from procs import MODEL, answered, cpu_seconds  # noqa: E402
from run import server_pids  # noqa: E402
from server import RunningServer, start_server  # noqa: E402

PROTOCOLS = ("http", "grpc")


def perf_point(pa: Path, srv: RunningServer, protocol: str, conc: int, seconds: float, tmp: Path) -> dict[str, object]:
    """One perf_analyzer run at one concurrency; its CSV row and the CPU per request by process."""
    url = srv.http_url if protocol == "http" else srv.grpc_url
    out = tmp / f"pa-{protocol}-{conc}.csv"
    cmd = [str(pa / "bin" / "perf_analyzer"), "-m", MODEL, "-u", url, "-i", protocol, "--concurrency-range", str(conc),
           "--measurement-interval", str(int(seconds * 1000)), "--max-trials", "8", "--stability-percentage", "30", "-f", str(out)]
    env = dict(os.environ, LD_LIBRARY_PATH=str(pa / "lib"))

    pids = server_pids(srv.proc.pid)
    log_path = tmp / f"pa-{protocol}-{conc}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        n0, cpu0 = answered(srv), cpu_seconds({**pids, "loadgen": [proc.pid]})
        client_s = cpu0["loadgen"]
        while proc.poll() is None:  # the client's CPU can only be read while it lives
            client_s = cpu_seconds({"loadgen": [proc.pid]})["loadgen"]
            try:
                proc.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
    cpu1 = {**cpu_seconds(pids), "loadgen": client_s}
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"perf_analyzer failed ({proc.returncode}):\n{log_path.read_text()[-2000:]}")
    row = next(csv.DictReader(out.open()))  # a failed request stops perf_analyzer (above): none here
    done = max(1, answered(srv) - n0)
    return {"client": f"perf_analyzer {protocol}", "concurrency": conc, "rps": float(row["Inferences/Second"]),
            "p50_ms": float(row["p50 latency"]) / 1000, "p99_ms": float(row["p99 latency"]) / 1000, "errors": 0,
            "cpu_us_per_request": {k: round((cpu1[k] - cpu0[k]) / done * 1e6, 1) for k in cpu0}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--perf-analyzer", required=True, type=Path, help="the folder perf_analyzer_setup.sh made")
    ap.add_argument("--concurrency", default="1,8,32", type=lambda s: [int(c) for c in s.split(",")])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="perf_analyzer's measurement window")
    ap.add_argument("--base-src", help="also serve this checkout's src in each round (the before column)")
    ap.add_argument("--label", help="write benchmarks/results/datapath_native_LABEL.json")
    args = ap.parse_args()
    if not (args.perf_analyzer / "bin" / "perf_analyzer").exists():
        ap.error(f"no bin/perf_analyzer in {args.perf_analyzer}: run benchmarks/datapath/perf_analyzer_setup.sh first")
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        small_cnn.build(tmp / "models" / "small_cnn" / "1" / "model.onnx")
        servers = [("modelplex", None)] + ([("modelplex_base", str(Path(args.base_src).resolve()))] if args.base_src else [])
        for r in range(args.rounds):
            for who, src in servers[r % len(servers):] + servers[:r % len(servers)]:
                rows += serve_round(args, tmp, r, who, src)
    report = {"cpus": os.cpu_count(), "rounds": args.rounds, "modelplex": rows}
    name = f"datapath_native_{args.label}.json" if args.label else "datapath_native.json"
    (HERE.parent / "results" / name).write_text(json.dumps(report, indent=2))
    print_native(rows)
    return 0


def serve_round(args: argparse.Namespace, tmp: Path, r: int, who: str, src: str | None) -> list[dict[str, object]]:
    """One server (this checkout, or `src`), every protocol at every concurrency, the protocols'
    order rotated each round."""
    srv = start_server(tmp / "models", tmp / f"state-{who}-{r}", env_extra={"PYTHONPATH": src} if src else None)
    rows: list[dict[str, object]] = []
    try:
        order = PROTOCOLS[r % 2:] + PROTOCOLS[:r % 2]
        for conc in args.concurrency:
            for protocol in order:
                point = perf_point(args.perf_analyzer, srv, protocol, conc, args.seconds, tmp)
                rows.append({**point, "client": f"{_prefix(who)}{point['client']}", "round": r})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        srv.stop()
    return rows


def _prefix(who: str) -> str:
    return "" if who == "modelplex" else f"{who} "


def print_native(rows: list[dict[str, object]]) -> None:
    from report import each_round, median_round, by_point

    lines = ["| client | in flight | req/s | p50 ms | p99 ms | gRPC / HTTP | req/s each round | client | frontend | workers |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    points = by_point(rows)
    http = {(g[0]["client"].replace(" http", " grpc"), g[0]["concurrency"]): median_round(g)["rps"]
            for g in points if g[0]["client"].endswith(" http")}
    for group in sorted(points, key=lambda g: (g[0]["client"].count("_base"), g[0]["concurrency"], g[0]["client"])):
        m = median_round(group)
        us = m["cpu_us_per_request"]
        base = http.get((m["client"], m["concurrency"]))
        ratio = f"{float(m['rps']) / float(base):.2f}" if base else ""
        lines.append(f"| {m['client']} | {m['concurrency']} | {m['rps']:.0f} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {ratio} | "
                     f"{each_round(group)} | {us['loadgen']:.0f} | {us['frontend']:.0f} | {us['workers']:.0f} |")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
