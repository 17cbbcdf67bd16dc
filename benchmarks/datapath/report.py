"""Tables of a benchmarks/datapath result: throughput and latency against in-process ONNX
Runtime, and CPU µs per request by process. With several rounds, each point shows its median
round (by req/s) and every round's req/s."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]


def print_tables(report: dict[str, Any]) -> None:
    base = _in_process(report["in_process"])
    best = max(median_round(rows)["rps"] for rows in base.values())
    one = median_round(base["1 caller(s)"])["p50_ms"]
    lines = ["| who | in flight | req/s | vs in-process (2 callers) | p50 ms | added p50 ms | p99 ms | errors | req/s each round |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rows in base.items():
        v = median_round(rows)
        lines.append(f"| ONNX Runtime in-process, {name} | {name.split()[0]} | {v['rps']:.0f} | {v['rps'] / best:.2f} | "
                     f"{v['p50_ms']:.3f} | | {v['p99_ms']:.3f} | 0 | {each_round(rows)} |")
    points = [(who, rows) for who in _servers(report) for rows in by_point(report.get(who, []))]
    for who, rows in points:
        r = median_round(rows)
        lines.append(f"| {who} {r['client']} | {r['concurrency']} | {r['rps']:.0f} | {r['rps'] / best:.2f} | "
                     f"{r['p50_ms']:.3f} | {r['p50_ms'] - one:+.3f} | {r['p99_ms']:.3f} | {sum(x['errors'] for x in rows)} | {each_round(rows)} |")
    lines += ["", "CPU µs per request answered, by process (inference itself included in the workers; the median round):", "",
              "| who | client | in flight | loadgen | frontend | workers | server total |", "|---|---|---|---|---|---|---|"]
    for who, rows in points:
        r = median_round(rows)
        us = r["cpu_us_per_request"]
        server = us.get("frontend", 0) + us.get("workers", 0)
        lines.append(f"| {who} | {r['client']} | {r['concurrency']} | {us.get('loadgen', 0):.0f} | "
                     f"{us.get('frontend', 0):.0f} | {us.get('workers', 0):.0f} | {server:.0f} |")
    print("\n".join(lines), flush=True)


def _in_process(raw: Any) -> dict[str, list[Row]]:
    """{"1 caller(s)": rows, "2 caller(s)": rows}, from a list of rows with their callers (rounds)
    or from one row per callers (a file written before rounds)."""
    if isinstance(raw, dict):
        return {name: [row] for name, row in raw.items()}
    out: dict[str, list[Row]] = {}
    for row in raw:
        out.setdefault(f"{row['callers']} caller(s)", []).append(row)
    return out


def by_point(rows: list[Row]) -> list[list[Row]]:
    """Rows grouped by (client, concurrency), in the order first measured."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["client"], row["concurrency"]), []).append(row)
    return list(groups.values())


def median_round(rows: list[Row]) -> Row:
    """The round whose req/s is the median (the lower middle of an even count)."""
    return sorted(rows, key=lambda r: r["rps"])[(len(rows) - 1) // 2]


def each_round(rows: list[Row]) -> str:
    return " / ".join(f"{r['rps']:.0f}" for r in rows)


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
