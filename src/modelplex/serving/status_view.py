"""Text rendering of GET /v2/plan for `modelplex status`, and the served plan's cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelplex.core.demand import Demand
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.core.profile import Profile
from modelplex.planning import PlannerConfig
from modelplex.planning.cost import CostComparison, Prices, exclusive_baseline, plan_cost


def format_status(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    plan = doc.get("plan")
    ctl = doc.get("controller")
    lines.append(f"policy: {plan['policy'] if plan else 'none (one slice per model instance)'}")
    if ctl:
        rates = ", ".join(f"{m} {r} req/s" for m, r in ctl["rates_rps"].items())
        lines.append(f"arrival rates: {rates or '-'}")
        lines.append(f"re-plans: {len(ctl['replans'])} (last: {ctl['replans'][-1]['reason'] if ctl['replans'] else '-'})")
    lines.append("")
    lines.append(f"{'slice':<12} {'cores':<8} {'util':>6}  {'worker':>8} {'MiB':>6}  models (batch)")
    planned: dict[str, str] = {}
    if plan:
        for s in plan["slices"]:
            planned[",".join(map(str, s["cpus"]))] = ", ".join(f"{a['model']} (b{a['batch']}, {a['share']:.0%})" for a in s["assignments"])
    for s in doc.get("slices", []):
        cores = ",".join(map(str, s["cpus"]))
        w = s["worker"]
        models = planned.get(cores) or ", ".join(s["models"])
        lines.append(
            f"{s['slice_id']:<12} {cores:<8} {s['utilisation']:>6.1%}  {w['pid'] or '-':>8} {w['rss_mb'] or 0:>6.0f}  {models}"
        )
    lines.append("")
    lines.append(f"{'model':<16} {'slo ms':>7} {'requests':>9} {'in slo':>8}")
    for name, m in doc.get("models", {}).items():
        att = m["slo_attainment"]
        lines.append(f"{name:<16} {m['slo_ms'] or '-':>7} {m['requests']:>9} {('-' if att is None else f'{att:.2%}'):>8}")
    gpus = doc.get("gpus")
    if gpus:
        from modelplex.runtime.gpu_probe import format_gpu_status

        lines.append("")
        lines.extend(format_gpu_status(gpus))
    if plan and plan.get("unserved"):
        lines.append("")
        lines.append("unserved by the plan: " + ", ".join(f"{m} {r:.1f} req/s" for m, r in plan["unserved"].items()))
    return "\n".join(lines)


def status_cost(doc: dict[str, Any], prices: Prices, profiles: Sequence[Profile] | None) -> CostComparison | None:
    """The served plan's cost (None: the server serves no plan) at the rates it was planned for,
    beside the exclusive baseline's where `profiles` are given (the server does not report its own)."""
    if not doc.get("plan"):
        return None
    plan = Plan.from_json(doc["plan"])
    ctl = doc.get("controller") or {}
    rates: dict[str, float] = {m: float(r) for m, r in (ctl.get("planned_for_rps") or {}).items()}
    mine = plan_cost(plan, prices, rates)
    if profiles is None:
        return CostComparison(mine, None, "the server does not report its profiles; pass --profiles to compare")
    if not rates:
        served = {a.model for s in plan.slices for a in s.assignments} | set(plan.unserved)
        rates = {m: plan.served_rate_rps(m) + plan.unserved.get(m, 0.0) for m in served}
    reported = doc.get("models") or {}
    slos = {m: float(reported[m]["slo_ms"]) for m in rates if (reported.get(m) or {}).get("slo_ms")}
    missing = sorted(set(rates) - set(slos))
    if missing:
        return CostComparison(mine, None, f"no SLO reported for {', '.join(missing)}")
    demands = [Demand(m, r, slos[m]) for m, r in sorted(rates.items())]
    try:
        exclusive = exclusive_baseline(demands, profiles, plan.devices, PlannerConfig())
    except InvalidArgumentError as exc:
        return CostComparison(mine, None, f"cannot plan the exclusive baseline: {exc.message}")
    return CostComparison(mine, plan_cost(exclusive, prices, rates))
