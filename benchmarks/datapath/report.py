"""Tables of a benchmarks/datapath result: throughput and latency against in-process ONNX
Runtime, and CPU µs per request by process."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("datapath")


def print_tables(report: dict[str, Any]) -> None:
    base = report["in_process"]
    best = max(v["rps"] for v in base.values())
    one = base["1 caller(s)"]["p50_ms"]
    lines = ["| who | in flight | req/s | vs in-process (2 callers) | p50 ms | added p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in base.items():
        lines.append(f"| ONNX Runtime in-process, {name} | {name.split()[0]} | {v['rps']:.0f} | {v['rps'] / best:.2f} | "
                     f"{v['p50_ms']:.3f} | | {v['p99_ms']:.3f} | 0 |")
    for who in _servers(report):
        for r in report.get(who, []):
            lines.append(f"| {who} {r['client']} | {r['concurrency']} | {r['rps']:.0f} | {r['rps'] / best:.2f} | "
                         f"{r['p50_ms']:.3f} | {r['p50_ms'] - one:+.3f} | {r['p99_ms']:.3f} | {r['errors']} |")
    lines += ["", "CPU µs per request answered, by process (inference itself included in the workers):", "",
              "| who | client | in flight | loadgen | frontend | workers | server total |", "|---|---|---|---|---|---|---|"]
    for who in _servers(report):
        for r in report.get(who, []):
            us = r["cpu_us_per_request"]
            server = us.get("frontend", 0) + us.get("workers", 0)
            lines.append(f"| {who} | {r['client']} | {r['concurrency']} | {us.get('loadgen', 0):.0f} | "
                         f"{us.get('frontend', 0):.0f} | {us.get('workers', 0):.0f} | {server:.0f} |")
    print("\n".join(lines), flush=True)


def _servers(report: dict[str, Any]) -> list[str]:
    """The served rows' keys: modelplex, its variants, the before tree, MLServer."""
    variants = [k for k in report if k.startswith("modelplex (")]
    return ["modelplex", *variants, "modelplex_base", "mlserver"]


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    if len(sys.argv) != 2:
        sys.exit("usage: report.py benchmarks/results/datapath[_LABEL].json   (prints its tables again)")
    print_tables(json.loads(Path(sys.argv[1]).read_text()))
