"""Autoscaling decisions per task or model (pure: a small state machine, `now` is an argument).

Each step gets, per deployment of a variant in one scope (a task or a model), the demand routed
to it (rate, strictest SLO, highest accuracy floor) and returns decisions; the caller logs them
and applies them (the controller asks the planner / executor). Rules:

- Capacity of one replica (variant v on a slice of s units at batch b): b / latency(s, b)
  requests per second, for the b (1, 2, 4, ... up to its max batch) that gives the most while a
  request still meets the SLO: latency(s, 1) <= slo at b = 1, and 2 x latency(s, b) <= slo for
  b > 1 (a request may wait for the batch ahead of it to finish before its own runs).
- Utilisation = rate / (replicas x capacity). Above `high_util` for `up_window_s`: scale up.
  Below `low_util` for `down_window_s`: scale down. After a change, `cooldown_s` with no other
  change to that deployment, so that load can settle (hysteresis: up fast, down slowly).
- Scaling picks, among all (variant, slice size, batch) whose accuracy meets the demand's floor
  (never below it; an unknown accuracy never meets a floor), the configuration that carries the
  rate at `target_util` with the least total cost (replicas x slice size x unit cost), ties to
  the current configuration, then to quicker load. The decision's action names what changed:
  REPLICATE / CONSOLIDATE (same configuration, more / fewer replicas), UPGRADE (another
  configuration with more capacity: larger batch, bigger slice or faster variant) or DOWNGRADE
  (another, cheaper configuration as load fell). A scale-down happens only when it saves cost.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from modelplex.core.profile import Profile


@dataclass(frozen=True)
class Option:
    """A variant the scope may deploy, with what the autoscaler may vary."""

    variant: str  # variant name
    accuracy: float | None  # measured accuracy (None = unknown: meets no floor)
    profile: Profile  # latency per (slice size, batch)
    slice_sizes: tuple[int, ...]  # slice sizes it may run on (device kind's units)
    max_batch: int  # largest batch the variant accepts (0 = no batch axis: batch 1)
    load_s: float = 0.0  # seconds to start a worker and load it (tie-break: quicker first)
    unit_cost: float = 1.0  # cost of one slice unit of its device kind


@dataclass(frozen=True)
class Deployment:
    """Replicas of one variant, each on its own slice of the same size, at one batch size."""

    variant: str  # variant name
    slice_size: int  # slice units per replica
    batch: int  # batch size each replica runs at
    replicas: int  # number of workers

    @property
    def label(self) -> str:
        return f"{self.replicas} x {self.variant} (slice {self.slice_size}, batch {self.batch})"


@dataclass(frozen=True)
class Observation:
    """Demand routed to one deployment over the last window."""

    deployment: Deployment  # what serves it now
    rate_rps: float  # observed request arrival rate
    slo_ms: float  # strictest latency target among its requests
    min_accuracy: float | None = None  # highest accuracy floor among its requests (None = none)


@dataclass(frozen=True)
class AutoscaleConfig:
    """Thresholds and windows of the hysteresis."""

    high_util: float = 0.8  # scale up above this utilisation...
    up_window_s: float = 2.0  # ...sustained this long
    low_util: float = 0.3  # scale down below this utilisation...
    down_window_s: float = 30.0  # ...sustained this long
    target_util: float = 0.6  # size new configurations to run at this utilisation
    cooldown_s: float = 5.0  # no further change to a deployment this soon after one
    min_replicas: int = 1  # never fewer workers per deployment (no scale to zero)
    max_replicas: int = 16  # never more workers per deployment


@dataclass(frozen=True)
class Timer:
    """Hysteresis state of one deployment."""

    high_since: float | None = None  # when utilisation went above high_util (None = not above)
    low_since: float | None = None  # when utilisation went below low_util (None = not below)
    changed_at: float | None = None  # when the autoscaler last changed it (for the cooldown)


@dataclass(frozen=True)
class AutoscaleState:
    """Timers per deployment key (`scope/variant@slice x batch`); replaced, never mutated."""

    timers: dict[str, Timer] = field(default_factory=dict)  # deployment key -> its timer

    def timer(self, key: str) -> Timer:
        return self.timers.get(key, Timer())


class Action(enum.Enum):
    """What a decision changes."""

    REPLICATE = "replicate"  # same configuration, more replicas
    UPGRADE = "upgrade"  # another configuration with more capacity
    DOWNGRADE = "downgrade"  # another, cheaper configuration
    CONSOLIDATE = "consolidate"  # same configuration, fewer replicas


@dataclass(frozen=True)
class Decision:
    """One change for the caller to log and apply."""

    scope: str  # task or model the deployment serves
    action: Action  # kind of change
    current: Deployment  # what runs now
    target: Deployment  # what should run instead
    rate_rps: float  # demand it was sized for
    utilisation: float  # utilisation of the current deployment that triggered it
    target_utilisation: float  # predicted utilisation of the target at that demand
    at_s: float  # `now` of the step that decided it
    reason: str  # one human-readable line


def replica_capacity(profile: Profile, slice_size: int, max_batch: int, slo_ms: float) -> tuple[int, float]:
    """(batch, requests per second) of one replica within the SLO; (1, 0.0) when none meets it."""
    best = (1, 0.0)
    b = 1
    while b <= max(max_batch, 1):
        latency = profile.latency_ms(slice_size, b)
        ok = latency <= slo_ms if b == 1 else 2.0 * latency <= slo_ms
        if ok and latency > 0:
            rate = b * 1000.0 / latency
            if rate > best[1]:
                best = (b, rate)
        b *= 2
    return best


def deployment_capacity(d: Deployment, option: Option, slo_ms: float) -> float:
    """Requests per second all replicas of `d` carry within the SLO at its batch."""
    latency = option.profile.latency_ms(d.slice_size, d.batch)
    ok = latency <= slo_ms if d.batch == 1 else 2.0 * latency <= slo_ms
    return d.replicas * d.batch * 1000.0 / latency if ok and latency > 0 else 0.0


def best_deployment(
    rate_rps: float, slo_ms: float, min_accuracy: float | None, options: Sequence[Option],
    config: AutoscaleConfig, current: Deployment | None = None,
) -> tuple[Deployment, float] | None:
    """The cheapest configuration carrying the rate at target utilisation, and its capacity;
    None when no option meets the accuracy floor or the SLO, or none fits in max_replicas."""
    ranked: list[tuple[tuple[float, int, float, str, int, int], Deployment, float]] = []
    for opt in options:
        if min_accuracy is not None and (opt.accuracy is None or opt.accuracy < min_accuracy):
            continue
        for size in opt.slice_sizes:
            batch, per_replica = replica_capacity(opt.profile, size, opt.max_batch, slo_ms)
            if per_replica <= 0:
                continue
            replicas = max(config.min_replicas, math.ceil(rate_rps / (per_replica * config.target_util)))
            if replicas > config.max_replicas:
                continue
            d = Deployment(opt.variant, size, batch, replicas)
            same = current is not None and _config(d) == _config(current)
            key = (replicas * size * opt.unit_cost, 0 if same else 1, opt.load_s, opt.variant, size, batch)
            ranked.append((key, d, replicas * per_replica))
    if not ranked:
        return None
    _, d, capacity = min(ranked, key=lambda r: r[0])
    return d, capacity


def step(
    state: AutoscaleState, now: float, scope: str, observations: Sequence[Observation],
    options: Sequence[Option], config: AutoscaleConfig = AutoscaleConfig(),
) -> tuple[AutoscaleState, list[Decision]]:
    """Update the hysteresis timers with this window's observations and decide changes."""
    by_name = {o.variant: o for o in options}
    timers: dict[str, Timer] = {}
    decisions: list[Decision] = []
    for obs in observations:
        cur = obs.deployment
        key = _key(scope, cur)
        opt = by_name.get(cur.variant)
        capacity = deployment_capacity(cur, opt, obs.slo_ms) if opt is not None else 0.0
        util = obs.rate_rps / capacity if capacity > 0 else (math.inf if obs.rate_rps > 0 else 0.0)
        t = state.timer(key)
        if util > config.high_util:
            t = replace(t, high_since=t.high_since if t.high_since is not None else now, low_since=None)
        elif util < config.low_util:
            t = replace(t, low_since=t.low_since if t.low_since is not None else now, high_since=None)
        else:
            t = replace(t, high_since=None, low_since=None)
        cooling = t.changed_at is not None and now - t.changed_at < config.cooldown_s
        up = t.high_since is not None and now - t.high_since >= config.up_window_s
        down = t.low_since is not None and now - t.low_since >= config.down_window_s
        decision = None
        if not cooling and (up or down):
            decision = _decide(scope, obs, util, capacity, up, options, config, now)
        if decision is None:
            timers[key] = t
            continue
        decisions.append(decision)
        timers[_key(scope, decision.target)] = Timer(changed_at=now)
    return AutoscaleState(timers), decisions


def _decide(
    scope: str, obs: Observation, util: float, capacity: float, up: bool,
    options: Sequence[Option], config: AutoscaleConfig, now: float,
) -> Decision | None:
    cur = obs.deployment
    found = best_deployment(obs.rate_rps, obs.slo_ms, obs.min_accuracy, options, config, cur)
    if found is None and up:
        found = _most_capacity(obs, options, config)  # best effort: demand beyond max_replicas
    if found is None:
        return None  # nothing meets the floor and SLO: no change helps; utilisation shows it
    target, target_capacity = found
    if target == cur:
        return None
    by_name = {o.variant: o for o in options}
    cost_now = cur.replicas * cur.slice_size * (by_name[cur.variant].unit_cost if cur.variant in by_name else 1.0)
    cost_new = target.replicas * target.slice_size * by_name[target.variant].unit_cost
    if up and target_capacity <= capacity:
        return None
    if not up and cost_new >= cost_now:
        return None  # scaling down must free capacity
    same = _config(target) == _config(cur)
    if up:
        action = Action.REPLICATE if same else Action.UPGRADE
    else:
        action = Action.CONSOLIDATE if same else Action.DOWNGRADE
    floor = f", accuracy floor {obs.min_accuracy:g}" if obs.min_accuracy is not None else ""
    target_util = obs.rate_rps / target_capacity if target_capacity > 0 else math.inf
    window = config.up_window_s if up else config.down_window_s
    reason = (
        f"{scope}: {obs.rate_rps:.4g} rps at {_pct(util)} of {cur.label} "
        f"({'>' if up else '<'} {_pct(config.high_util if up else config.low_util)} for {window:g} s"
        f"{floor}, SLO {obs.slo_ms:g} ms) -> {action.value} to {target.label}: "
        f"{_pct(target_util)} utilisation, cost {cost_now:g} -> {cost_new:g} slice units"
    )
    return Decision(scope, action, cur, target, obs.rate_rps, util, target_util, now, reason)


def _most_capacity(obs: Observation, options: Sequence[Option], config: AutoscaleConfig) -> tuple[Deployment, float] | None:
    best: tuple[Deployment, float] | None = None
    for opt in options:
        if obs.min_accuracy is not None and (opt.accuracy is None or opt.accuracy < obs.min_accuracy):
            continue
        for size in opt.slice_sizes:
            batch, per_replica = replica_capacity(opt.profile, size, opt.max_batch, obs.slo_ms)
            total = per_replica * config.max_replicas
            if per_replica > 0 and (best is None or total > best[1]):
                best = (Deployment(opt.variant, size, batch, config.max_replicas), total)
    return best


def _config(d: Deployment) -> tuple[str, int, int]:
    return (d.variant, d.slice_size, d.batch)


def _key(scope: str, d: Deployment) -> str:
    return f"{scope}/{d.variant}@{d.slice_size}x{d.batch}"


def _pct(x: float) -> str:
    return "overload" if math.isinf(x) else f"{100 * x:.0f}%"
