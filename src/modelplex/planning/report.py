"""Human-readable rendering of a plan: a text table, and a PNG drawing (matplotlib, Agg)."""

from __future__ import annotations

from modelplex.core.plan import Plan
from modelplex.planning.menus import device_unit


def format_plan(plan: Plan) -> str:
    """A fixed-width table: one row per (slice, model)."""
    units = {d.device_id: device_unit(d.kind) for d in plan.devices}
    head = f"{'slice':<12} {'size':>6} {'model':<16} {'batch':>5} {'rate_rps':>10} {'share':>6} {'lat_ms':>8} {'duty_ms':>8} {'util':>5}"
    lines = [f"policy {plan.policy}: {len(plan.devices)} device(s), {len(plan.slices)} slice(s)", head, "-" * len(head)]
    for s in plan.slices:
        size = f"{s.slice.size}{units.get(s.slice.device_id, '')}"
        for k, a in enumerate(s.assignments):
            first = k == 0
            lines.append(
                f"{s.slice_id if first else '':<12} {size if first else '':>6} {a.model:<16} {a.batch:>5} "
                f"{a.rate_rps:>10.1f} {a.share:>6.2f} {a.latency_ms:>8.2f} "
                f"{(f'{s.duty_cycle_ms:.2f}' if first and s.duty_cycle_ms else ''):>8} "
                f"{(f'{s.utilisation:.2f}' if first else ''):>5}"
            )
    for model, rate in sorted(plan.unserved.items()):
        lines.append(f"UNSERVED {model}: {rate:.1f} rps could not be placed")
    return "\n".join(lines)
