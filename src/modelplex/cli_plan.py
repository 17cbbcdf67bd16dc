"""CLI subcommands `plan` and `simulate` (the main `modelplex` CLI registers them).

    modelplex plan --demand demand.yaml --profiles P.json|P.csv --devices gpu:4 [--policy elastic]
                   [--out plan.json] [--png plan.png] [--interference I.json]
                   [--minimize-devices] [--max-batch N] [--max-processes K] [--context-mb MB]
                   [--prices gpu=2.50/h,cpu-core=0.04/h | --prices prices.yaml]
                   [--print-mig-commands]
    modelplex simulate --plan plan.json --profiles P.json --trace poisson:scale=0.5
                   --duration 10 [--seed 0] [--warmup 1] [--demand demand.yaml] [--out result.json]

`--minimize-devices` plans on the fewest devices of the pool `--devices` names (see
modelplex.planning.mindevices) and prints the lower bound and the gap to it.
Formats: demand YAML and devices SPEC in modelplex.planning.specs; profiles CSV in
modelplex.planning.csv_profiles (a file ending in .csv); trace SPEC in
modelplex.sim.arrivals; prices in modelplex.planning.cost. The plan JSON is Plan.to_json() plus
"demand" (model, rate_rps, slo_ms), which `simulate` uses for SLOs and rates, and with --prices a
"cost" block (the plan's and the exclusive baseline's device use and cost, and their ratio).
Exit codes: 0 ok; 1 the plan leaves demand unserved (the plan is still written); 2 bad input
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from modelplex.control.frontend_load import DEFAULT_US_PER_REQUEST
from modelplex.core.demand import Demand
from modelplex.core.errors import InvalidArgumentError, ModelplexError
from modelplex.core.plan import Plan
from modelplex.core.profile import Profile
from modelplex.app.plan_picture import draw_plan
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.planning import POLICIES, PlannerConfig, get_policy, solve_min_devices
from modelplex.planning.cost import (
    CostComparison, Prices, cost_lines, exclusive_baseline, parse_prices, plan_cost, prices_from_data,
)
from modelplex.planning.csv_profiles import parse_profiles_csv
from modelplex.planning.frontend import kept_cores, kept_words, plan_beside_frontend
from modelplex.planning.interference import describe, interference_from_json
from modelplex.planning.mig import mig_commands
from modelplex.planning.report import format_plan
from modelplex.planning.specs import demands_from_data, parse_devices, profiles_from_data

log = logging.getLogger(__name__)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InvalidArgumentError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None


def _json(path: str, what: str) -> Any:
    try:
        return json.loads(_read(path, what))
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{what}: {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def load_profiles(path: str, default_kind: DeviceKind = DeviceKind.GPU_MIG) -> list[Profile]:
    """Profiles JSON, or a CSV table (a path ending in .csv) whose rows default to `default_kind`."""
    if path.lower().endswith(".csv"):
        return parse_profiles_csv(_read(path, "profiles"), default_kind, f"profiles {path}")
    return profiles_from_data(_json(path, "profiles"))


def _config(args: argparse.Namespace, profiles: Sequence[Profile]) -> PlannerConfig:
    interference = interference_from_json(_json(args.interference, "interference")) if args.interference else None
    if args.max_batch < 0 or args.max_processes < 1 or (args.context_mb is not None and args.context_mb < 0):
        raise InvalidArgumentError("--max-batch must be >= 0, --max-processes >= 1 and --context-mb >= 0")
    # 0 = as large as the profiles hold (their largest measured batch)
    top = args.max_batch or max((p.batch for prof in profiles for p in prof.points), default=1)
    kwargs: dict[str, Any] = {
        "safety_factor": args.safety, "rate_quantile": args.rate_quantile, "time_limit_s": args.time_limit,
        "max_batch": top, "max_processes": args.max_processes, "context_mb": args.context_mb,
    }
    if interference is not None:
        kwargs["interference"] = interference
    return PlannerConfig(**kwargs)


def parse_demand_yaml(text: str) -> list[Demand]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidArgumentError(f"demand: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return demands_from_data(data)


def load_prices(value: str) -> Prices:
    """`--prices`: KEY=PRICE pairs (gpu=2.50/h,cpu-core=0.04/h), or a YAML/JSON file mapping the keys."""
    if "=" in value:
        return parse_prices(value)
    try:
        data = yaml.safe_load(_read(value, "prices"))
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"prices: {value} is not YAML or JSON ({getattr(exc, 'problem', exc)})") from None
    return prices_from_data(data)


def _plan_cost(plan: Plan, prices: Prices, demands: Sequence[Demand], profiles: Sequence[Profile],
               devices: Sequence[DeviceSpec], cfg: PlannerConfig) -> CostComparison:
    """The plan's cost beside the exclusive baseline's for the same demand, profiles and settings."""
    rates = {d.model: d.rate_rps for d in demands}
    exclusive = exclusive_baseline(demands, profiles, devices, cfg)
    return CostComparison(plan_cost(plan, prices, rates), plan_cost(exclusive, prices, rates))


def cmd_plan(args: argparse.Namespace) -> int:
    if args.frontend_us < 0:
        raise InvalidArgumentError(f"--frontend-us must be 0 or more (µs of CPU per request), got {args.frontend_us:g}")
    demands = parse_demand_yaml(_read(args.demand, "demand"))
    devices = parse_devices(args.devices)
    prices = load_prices(args.prices) if args.prices else None
    if prices is not None:
        prices.unit_price(devices[0].kind)  # a missing price fails before planning
    profiles = load_profiles(args.profiles, devices[0].kind)
    try:
        cfg = _config(args, profiles)
    except ValueError as exc:
        raise InvalidArgumentError(f"interference: {exc}") from None
    summary: dict[str, object] = {}
    if args.minimize_devices:
        res = solve_min_devices(demands, profiles, devices, cfg)
        plan = res.plan
        summary = {"devices": res.devices, "lower_bound": res.lower_bound, "bound_devices": res.bound_devices,
                   "gap": res.gap, "source": res.source, "exact_status": res.exact_status, "candidates": res.candidates}
    else:
        policy = get_policy(args.policy)
        plan = plan_beside_frontend(lambda devs: policy(demands, profiles, devs, cfg), devices, demands, args.frontend_us)
    print(format_plan(plan))
    for device_id, cores in kept_cores(plan).items():
        print(f"{device_id}: {kept_words(cores)} (--frontend-us {args.frontend_us:g})")
    for line in segment_lines(plan):
        print(line)
    print(describe(cfg.interference))
    if args.print_mig_commands:
        for line in mig_layout_commands(plan):
            print(line)
    if summary:
        print(f"min-devices: {summary['devices']} device(s); lower bound {summary['lower_bound']} "
              f"(total work / capacity = {summary['bound_devices']}), gap {summary['gap']}; "
              f"from {summary['source']}; exact program: {summary['exact_status']}")
    cost = _plan_cost(plan, prices, demands, profiles, devices, cfg) if prices is not None else None
    for line in cost_lines(cost) if cost is not None else []:
        print(line)
    data = plan.to_json()
    if cost is not None:
        data["cost"] = cost.to_json()
    data["demand"] = [{"model": d.model, "rate_rps": d.rate_rps, "slo_ms": d.slo_ms} for d in demands]
    if summary:
        data["min_devices"] = summary
    data["interference"] = describe(cfg.interference)
    if args.out:
        Path(args.out).write_text(json.dumps(data, indent=1))
        print(f"wrote {args.out}")
    if args.png:
        draw_plan(plan, args.png)
        print(f"wrote {args.png}")
    if plan.unserved:
        worst = ", ".join(f"{m} ({r:.1f} rps)" for m, r in sorted(plan.unserved.items()))
        log.error("not enough devices in %s: unserved %s", args.devices, worst)
        return 1
    return 0


def mig_layout_commands(plan: Plan) -> list[str]:
    """The `nvidia-smi mig` commands of a plan's MIG layout (printed for an operator, never run)."""
    placed: dict[str, list[tuple[int, int]]] = {}
    for s in plan.slices:
        if s.slice.mig_start >= 0:
            placed.setdefault(s.slice.device_id, []).append((s.slice.size, s.slice.mig_start))
    if not placed:
        return ["# no MIG instances in this plan (plan with --devices mig:N[@model])"]
    return mig_commands(plan.devices, placed)


def segment_lines(plan: Plan) -> list[str]:
    """Per slice: MIG placement, worker processes and planned memory (what format_plan omits)."""
    out = []
    for s in plan.slices:
        where = f" mig {s.slice.size}g@{s.slice.mig_start}" if s.slice.mig_start >= 0 else ""
        if where or s.processes > 1 or s.memory_mb > 0:
            out.append(f"  {s.slice_id}:{where} processes {s.processes}, memory {s.memory_mb:,.0f} MB")
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from modelplex.sim import SimConfig, Simulator, format_result, generate, parse_trace_spec, read_csv_trace

    raw = _json(args.plan, "plan")
    try:
        plan = Plan.from_json(raw)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"plan: {args.plan} is not a plan ({exc.message})") from None
    demand: list[Demand] = demands_from_data(raw["demand"]) if isinstance(raw, dict) and raw.get("demand") else []
    if args.demand:
        demand = parse_demand_yaml(_read(args.demand, "demand"))
    if not demand:
        raise InvalidArgumentError("simulate: the plan has no 'demand' (SLOs); pass --demand demand.yaml")
    if args.duration <= 0 or args.warmup < 0 or args.warmup >= args.duration:
        raise InvalidArgumentError("simulate: need duration > warmup >= 0")
    spec = parse_trace_spec(args.trace)
    profiles = load_profiles(args.profiles, plan.devices[0].kind if plan.devices else DeviceKind.GPU_MIG)
    sim = Simulator(plan, profiles, {d.model: d.slo_ms for d in demand}, SimConfig(seed=args.seed, warmup_s=args.warmup))
    if spec.kind == "csv":
        trace = read_csv_trace(_read(spec.path, "trace"), sim.model_index, args.duration)
    else:
        trace = generate(spec, sim.rates_rps({d.model: d.rate_rps for d in demand}), args.duration, np.random.default_rng(args.seed))
    result = sim.run(trace, args.duration)
    print(format_result(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result.to_json(), indent=1))
        print(f"wrote {args.out}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Register `plan` and `simulate` on an argparse subparsers object."""
    p = subparsers.add_parser("plan", help="plan models onto device slices under their SLOs")
    p.add_argument("--demand", required=True, help="demand YAML (models with rate_rps and slo_ms)")
    p.add_argument("--profiles", required=True, help="profiles JSON")
    p.add_argument("--devices", required=True, help="devices SPEC, e.g. gpu:4, mig:2, cpu:16, cpu:2x8")
    p.add_argument("--policy", default="elastic", choices=sorted(POLICIES), help="planning policy")
    p.add_argument("--frontend-us", type=float, default=DEFAULT_US_PER_REQUEST,
                   help="on one CPU host, the server's own CPU µs per request: it keeps the first core(s) for that "
                        "load while the models fit on the others, as `modelplex serve --policy` plans (default %(default)s)")
    p.add_argument("--out", help="write the plan JSON here")
    p.add_argument("--png", help="draw the plan to this PNG")
    p.add_argument("--safety", type=float, default=1.1, help="latency safety factor")
    p.add_argument("--rate-quantile", type=float, default=0.99, help="plan for this Poisson quantile of each rate (0 = mean)")
    p.add_argument("--interference", help='interference model JSON: {"kind": "linear", "coeffs": [c0..c4]}')
    p.add_argument("--time-limit", type=float, default=10.0, help="optimal: solver time limit (s)")
    p.add_argument("--minimize-devices", action="store_true", help="use the fewest devices of the pool (ignores --policy); prints the lower bound and gap")
    p.add_argument("--max-batch", type=int, default=0, help="largest batch planned (0 = the largest batch in the profiles)")
    p.add_argument("--max-processes", type=int, default=8, help="most worker processes per slice (only where profiles measured them)")
    p.add_argument("--context-mb", type=float, default=None, help="device memory per worker process (default 1230 on GPUs, 0 on CPUs)")
    p.add_argument("--prices", help="report the plan's cost (and the exclusive baseline's): gpu=2.50/h,cpu-core=0.04/h "
                   "or a YAML/JSON file of those keys (also gpu-mps, gpu-mig); see modelplex.planning.cost")
    p.add_argument("--print-mig-commands", action="store_true",
                   help="print the nvidia-smi mig commands that make the planned MIG layout (for an operator; never run)")
    p.set_defaults(func=plan_command)
    s = subparsers.add_parser("simulate", help="simulate a plan under a traffic trace")
    s.add_argument("--plan", required=True, help="plan JSON written by `plan --out`")
    s.add_argument("--profiles", required=True, help="profiles JSON")
    s.add_argument("--trace", default="poisson", help="trace SPEC, e.g. poisson:scale=0.5, gamma:cv=2, step:at=0/0.5;5/1.2, csv:path=t.csv")
    s.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    s.add_argument("--warmup", type=float, default=0.0, help="seconds excluded from the statistics")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--demand", help="demand YAML overriding the plan's (rates and SLOs)")
    s.add_argument("--out", help="write the result JSON here")
    s.set_defaults(func=simulate_command)


def _guarded(cmd: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command, turning bad input into one line on stderr and exit code 2."""
    try:
        return cmd(args)
    except ModelplexError as exc:
        log.error("%s", exc.message)
        return 2


def plan_command(args: argparse.Namespace) -> int:
    """`func` of the plan subcommand."""
    return _guarded(cmd_plan, args)


def simulate_command(args: argparse.Namespace) -> int:
    """`func` of the simulate subcommand."""
    return _guarded(cmd_simulate, args)


def main(argv: Sequence[str] | None = None) -> int:
    from modelplex.cli import configure_logging

    configure_logging()
    parser = argparse.ArgumentParser(prog="modelplex")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
