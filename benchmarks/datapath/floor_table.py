"""floor.py's arithmetic and table (no I/O): the budget 0.80 of the in-process rate leaves per
request outside ONNX Runtime, and each server's CPU outside it."""

from __future__ import annotations

from typing import Any

FIXED = "bare (fixed answer)"  # the server that runs no model


def budget_us(in_process_rps: float, ort_us: float, cores: int = 2, share: float = 0.8) -> float:
    """CPU µs per request the machine may spend outside ONNX Runtime at `share` of the in-process rate."""
    return cores * 1e6 / (share * in_process_rps) - ort_us


def outside_us(cpu_us: dict[str, float], ort_us: float, runs_model: bool) -> float:
    """Machine CPU µs per request outside ONNX Runtime: every process measured, less the model's
    own cost per image where the server ran the model."""
    return sum(cpu_us.values()) - (ort_us if runs_model else 0.0)


def table(rounds: list[dict[str, Any]]) -> str:
    """Every round: the in-process baseline, then each server against it and the budget."""
    lines = ["| round | who | req/s | vs in-process | load generator µs | server µs | outside ONNX Runtime µs | budget µs |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds, 1):
        ip, ort_us, budget = float(r["in_process_rps"]), float(r["ort_us_per_image"]), float(r["budget_us"])
        lines.append(f"| {i} | in-process (2 callers; {ort_us:.0f} µs per image in batches of 8) | {ip:.0f} | 1.00 | | | | {budget:.0f} |")
        for who, row in r["servers"].items():
            us = row["cpu_us_per_request"]
            server = sum(v for k, v in us.items() if k != "loadgen")
            outside = outside_us(us, ort_us, runs_model=who != FIXED)
            lines.append(f"| {i} | {who} | {row['rps']:.0f} | {row['rps'] / ip:.2f} | {us['loadgen']:.0f} | {server:.0f} | {outside:.0f} | {budget:.0f} |")
    return "\n".join(lines)
