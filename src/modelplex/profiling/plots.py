"""PNG plots of profiles and of the interference model (matplotlib, Agg backend: no display)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from modelplex.core.profile import Profile
from modelplex.profiling.interference import Observation


def plot_all(path: Path, profiles: Sequence[Profile], observations: Sequence[Observation] = (),
             predicted: Sequence[float] = ()) -> Path:
    """One PNG: latency vs batch per slice size (a panel per model), throughput vs slice size,
    and, when pairs were measured, predicted (held out) vs measured slowdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(profiles) + 1 + (1 if observations and predicted else 0)
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, prof in zip(flat, profiles):
        for size in prof.slice_sizes():
            pts = sorted((p for p in prof.points if p.slice_size == size), key=lambda p: p.batch)
            ax.plot([p.batch for p in pts], [p.p50_ms for p in pts], marker="o", label=f"slice {size} p50")
            ax.plot([p.batch for p in pts], [p.p99_ms for p in pts], linestyle=":", alpha=0.6, label=f"slice {size} p99")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("latency of one batch (ms)")
        ax.set_title(f"{prof.model} ({prof.hardware})", fontsize=9)
        ax.legend(fontsize=7)
    ax = flat[len(profiles)]
    for prof in profiles:
        sizes = prof.slice_sizes()
        best = [max((p.throughput_rps for p in prof.points if p.slice_size == s), default=0.0) for s in sizes]
        ax.plot(sizes, best, marker="o", label=prof.model)
    ax.set_yscale("log")
    ax.set_xlabel("slice size")
    ax.set_ylabel("best throughput over batches (inferences/s)")
    ax.set_title("throughput vs slice size", fontsize=9)
    ax.legend(fontsize=7)
    if observations and predicted:
        ax = flat[len(profiles) + 1]
        measured = [o.alpha for o in observations]
        predicted = list(predicted)
        ax.scatter(measured, predicted, s=14)
        lo, hi = min(measured + predicted), max(measured + predicted)
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
        ax.set_xlabel("measured slowdown")
        ax.set_ylabel("predicted slowdown (pair held out)")
        ax.set_title("interference: predicted vs measured", fontsize=9)
    for ax in flat[panels:]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
