"""The picture of a plan: devices as rows, slices as boxes with their models (matplotlib; kept
out of the pure planning package)."""

from __future__ import annotations

import os
import tempfile

from modelplex.core.plan import Plan


def plan_png(plan: Plan) -> bytes:
    """The picture of `plan` as PNG bytes (for the dashboard)."""
    fd, path = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        draw_plan(plan, path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def draw_plan(plan: Plan, path: str) -> None:
    """Devices as horizontal bars cut into slices, each labelled with its models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({a.model for s in plan.slices for a in s.assignments})
    cmap = plt.get_cmap("tab20")
    colour = {m: cmap(i % 20) for i, m in enumerate(models)}
    fig_h = 0.6 + 0.55 * max(1, len(plan.devices))
    fig, ax = plt.subplots(figsize=(10, fig_h))
    for row, dev in enumerate(plan.devices):
        left = 0.0
        ax.barh(row, 1.0, left=0, color="#eeeeee", edgecolor="#999999", height=0.7)
        for s in (s for s in plan.slices if s.slice.device_id == dev.device_id):
            width = s.slice.size / dev.capacity
            n = len(s.assignments)
            for k, a in enumerate(s.assignments):
                ax.barh(row - 0.35 + 0.7 * k / n + 0.35 / n, width, left=left, height=0.7 / n, color=colour[a.model], edgecolor="black", linewidth=0.5)
            label = "\n".join(f"{a.model} b{a.batch}" for a in s.assignments)
            ax.text(left + width / 2, row, label, ha="center", va="center", fontsize=7)
            left += width
    ax.set_yticks(range(len(plan.devices)), [d.device_id for d in plan.devices])
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of device")
    ax.invert_yaxis()
    ax.set_title(f"plan ({plan.policy}): {len(plan.devices)} devices, {len(plan.slices)} slices")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
