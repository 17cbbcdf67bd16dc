"""What `modelplex bench` writes: a table on stdout, bench.json, and PNG plots (latency CDF per
model, goodput against offered rate; matplotlib's Agg backend, no display)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from modelplex.bench.stats import ModelRung

HEAD = ("model", "rate/s", "offered/s", "goodput/s", "p50 ms", "p95 ms", "p99 ms", "SLO ms", "attain", "not good")


def _cell(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"
    return str(x)


def table_rows(rungs: Sequence[Sequence[ModelRung]]) -> list[list[str]]:
    rows = []
    for rung in rungs:
        for r in rung:
            doc = r.to_json()
            attain = r.attainment
            bad = ", ".join(f"{k} {v}" for k, v in sorted(r.rejections.items())) or "-"
            late = r.ok - r.good
            if late:
                bad = f"over SLO {late}" + ("" if bad == "-" else f", {bad}")
            rows.append([r.model, _cell(r.rate_rps), _cell(r.offered_rps), _cell(r.goodput_rps),
                         _cell(doc["p50_ms"]), _cell(doc["p95_ms"]), _cell(doc["p99_ms"]), _cell(r.slo_ms),
                         "-" if attain is None else f"{attain * 100:.1f}%", bad])
    return rows


def print_table(rungs: Sequence[Sequence[ModelRung]], out: TextIO) -> None:
    rows = [list(HEAD)] + table_rows(rungs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEAD) - 1)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, len(HEAD) - 1)]
        out.write("  ".join(cells) + "  " + row[-1] + "\n")


def write_json(path: Path, meta: dict[str, Any], rungs: Sequence[Sequence[ModelRung]]) -> Path:
    doc = {**meta, "rungs": [[r.to_json() for r in rung] for rung in rungs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def plot(path: Path, rungs: Sequence[Sequence[ModelRung]]) -> Path:
    """Left: latency CDF per model (each rung a line); right: goodput against offered rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cdf, good) = plt.subplots(1, 2, figsize=(11, 4.2))
    models = [r.model for r in rungs[0]] if rungs else []
    colors = plt.get_cmap("tab10")
    for k, name in enumerate(models):
        for j, rung in enumerate(rungs):
            r = rung[k]
            if not len(r.latencies_s):
                continue
            y = np.arange(1, len(r.latencies_s) + 1) / max(r.arrivals, 1)  # lost requests keep it below 1
            alpha = 0.35 + 0.65 * (j + 1) / len(rungs)
            cdf.plot(r.latencies_s * 1e3, y, color=colors(k % 10), alpha=alpha,
                     label=f"{name} @ {r.offered_rps:.0f}/s" if len(rungs) <= 4 or j == len(rungs) - 1 else None)
        slo = rungs[0][k].slo_ms
        if slo is not None:
            cdf.axvline(slo, color=colors(k % 10), linestyle=":", linewidth=0.8)
        good.plot([rung[k].offered_rps for rung in rungs], [rung[k].goodput_rps for rung in rungs],
                  marker="o", color=colors(k % 10), label=name)
    cdf.set_xscale("log")
    cdf.set_xlabel("latency from scheduled arrival (ms)")
    cdf.set_ylabel("share of arrivals answered 200")
    cdf.set_title("latency CDF (dotted: SLO)", fontsize=9)
    cdf.legend(fontsize=7)
    top = max((r.offered_rps for rung in rungs for r in rung), default=1.0)
    good.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--", label="goodput = offered")
    good.set_xlabel("offered rate (req/s)")
    good.set_ylabel("goodput (answers within SLO per s)")
    good.set_title("goodput vs offered rate", fontsize=9)
    good.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
