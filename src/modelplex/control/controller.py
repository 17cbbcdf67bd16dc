"""When to re-plan, and for what demand (pure: `now` and observations are passed in).

The runtime and the simulator both drive a Controller: every sampling interval they report the
arrivals they saw; `step` answers with a new plan when demand moved enough, and the driver applies
it (the runtime starts workers beside the old ones and switches routing when they are ready)
and reports back with `applied`. Thresholds follow the reference system (see
shared/reference/gpulet.md, re-planning at run time) and are configurable."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modelplex.core.demand import Demand
from modelplex.core.plan import Plan
from modelplex.control.frontend_load import FrontendLoad
from modelplex.control.rates import RateEstimator
from modelplex.planning.frontend import cores_wanted


@dataclass(frozen=True)
class ControllerConfig:
    """Re-planning thresholds."""

    sample_s: float = 0.5  # arrival counting interval
    alpha: float = 0.3  # EWMA weight of the newest interval
    rise_frac: float = 0.05  # re-plan when a model's rate rises this much above planned-for
    fall_frac: float = 0.10  # ... or falls this much below it
    headroom: float = 1.2  # plan for this multiple of the smoothed rate
    headroom_low: float = 1.5  # ... and this multiple below `low_rate_rps`
    low_rate_rps: float = 125.0  # where the larger headroom stops
    min_interval_s: float = 2.0  # least time between two re-plans (lets the last one settle)
    min_rate_rps: float = 0.5  # a model is planned for at least this rate
    noise_z: float = 3.0  # a move must also exceed this many standard errors of the Poisson estimate


@dataclass(frozen=True)
class Replan:
    """The decision to apply a new plan."""

    plan: Plan  # the new plan
    demands: tuple[Demand, ...]  # the demand it was made for
    reason: str  # why now, for logs and status
    at_s: float  # when it was decided
    frontend_us: float = 0.0  # the frontend's CPU µs per request the plan was made with


PlanFn = Callable[[Sequence[Demand], float], Plan]  # (demands, the frontend's CPU µs per request) -> plan


@dataclass
class Controller:
    """Watches arrival rates and decides re-plans."""

    slo_ms: dict[str, float]  # model -> latency SLO
    planner: PlanFn  # demand -> plan (a pure policy with profiles and devices bound)
    config: ControllerConfig = field(default_factory=ControllerConfig)  # thresholds
    rates: RateEstimator = field(init=False)  # smoothed arrival rates
    planned_for: dict[str, float] = field(default_factory=dict)  # rate each model's plan assumed
    frontend: FrontendLoad = field(default_factory=FrontendLoad)  # the frontend's measured CPU per request
    pending: Replan | None = field(default=None, init=False)  # decided, not yet applied
    last_replan_s: float = field(default=float("-inf"), init=False)  # when the last was decided
    history: list[Replan] = field(default_factory=list, init=False)  # every decision made

    def __post_init__(self) -> None:
        self.rates = RateEstimator(self.config.sample_s, self.config.alpha)
        for model in self.slo_ms:
            self.rates.track(model)

    def observe(self, model: str, now: float, count: int = 1) -> None:
        self.rates.observe(model, now, count)
        self.frontend.arrived(count)

    def frontend_cpu(self, cpu_s: float) -> None:
        """The frontend process spent `cpu_s` CPU seconds since its last report (each interval)."""
        self.frontend.cpu_used(cpu_s)

    def target_rate(self, smoothed_rps: float) -> float:
        c = self.config
        factor = c.headroom_low if smoothed_rps < c.low_rate_rps else c.headroom
        return max(c.min_rate_rps, smoothed_rps * factor)

    def noise_rps(self, rate_rps: float) -> float:
        """noise_z standard errors of the smoothed rate of a Poisson stream: an EWMA of weight
        alpha over intervals of sample_s averages about sample_s (2 - alpha) / alpha seconds."""
        c = self.config
        window_s = c.sample_s * (2 - c.alpha) / c.alpha
        return c.noise_z * math.sqrt(max(rate_rps, c.min_rate_rps) / window_s)

    def initial(self, expected_rps: dict[str, float], now: float) -> Replan:
        """The first plan, for rates the operator expects (or the minimum)."""
        return self._decide({m: self.target_rate(expected_rps.get(m, 0.0)) for m in self.slo_ms}, "initial plan", now)

    def step(self, now: float) -> Replan | None:
        """A new plan when some model's rate moved past the thresholds, else None."""
        if self.pending is not None or now - self.last_replan_s < self.config.min_interval_s:
            return None
        smoothed = self.rates.rates(now)
        moved: list[str] = []
        for model in self.slo_ms:
            if model not in smoothed:
                continue  # no interval measured yet: nothing to compare
            want = self.target_rate(smoothed[model])
            have = self.planned_for.get(model, 0.0)
            beyond = want > have * (1 + self.config.rise_frac) or want < have * (1 - self.config.fall_frac)
            if have <= 0 or (beyond and abs(want - have) > self.noise_rps(smoothed[model]) * want / max(smoothed[model], 1e-9)):
                moved.append(f"{model} {have:.1f}->{want:.1f} req/s")
        if not moved:
            return self._frontend_step(now)
        targets = {m: self.target_rate(smoothed[m]) if m in smoothed else self.planned_for.get(m, 0.0) for m in self.slo_ms}
        return self._decide(targets, "rate moved: " + ", ".join(moved), now)

    def _frontend_step(self, now: float) -> Replan | None:
        """A new plan for the same demand when the frontend's measured cost moved enough that it
        wants another number of cores than the last plan was made for (planning.frontend)."""
        if not self.history or self.frontend.samples == 0:
            return None
        last = self.history[-1]
        was = cores_wanted(last.demands, last.frontend_us)
        now_wanted = cores_wanted(last.demands, self.frontend.us_per_request)
        if was == now_wanted:
            return None
        reason = (f"frontend cost moved: {last.frontend_us:.0f}->{self.frontend.us_per_request:.0f} µs per request "
                  f"({was}->{now_wanted} core(s) wanted)")
        return self._decide({d.model: d.rate_rps for d in last.demands}, reason, now)

    def applied(self, replan: Replan, now: float) -> None:
        """The driver finished applying `replan` (its workers are serving)."""
        if self.pending is replan:
            self.pending = None

    def _decide(self, targets: dict[str, float], reason: str, now: float) -> Replan:
        demands = tuple(Demand(m, targets[m], self.slo_ms[m]) for m in sorted(self.slo_ms))
        try:
            plan = self.planner(demands, self.frontend.us_per_request)
        except Exception:
            self.last_replan_s = now  # back off for min_interval_s before trying again
            raise
        replan = Replan(plan, demands, reason, now, self.frontend.us_per_request)
        self.planned_for = dict(targets)
        self.pending = replan
        self.last_replan_s = now
        self.history.append(replan)
        return replan
