"""Discrete-event simulation of serving: a heap of (time, seq, event) in a short loop.

It drives the very objects the live runtime drives -- a SliceScheduler per slice, a Router per
model, the plan diff for plan changes and, when re-planning, the Controller -- and adds only a
simulated clock and executor: service times drawn lognormal around the profile's p50 (its p99
as 99th percentile) times the interference slowdown of the plan's layout, and worker start
times from the profiles' measured load times. Arrivals are pre-generated (sorted arrays) and
merged with the heap."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import BatchingConfig
from modelplex.core.plan import Plan
from modelplex.planning.context import Profiles
from modelplex.planning.interference import NO_INTERFERENCE, InterferenceModel
from modelplex.planning.service import ServiceModel
from modelplex.sim.arrivals import Trace
from modelplex.control.controller import Controller
from modelplex.sim.fleet import PLAN_EVENT, TICK_EVENT, Outcomes, PlanChange, SimFleet, SimSlice
from modelplex.sim.metrics import SimResult, summarise


@dataclass(frozen=True)
class SimConfig:
    """Settings of one run."""

    seed: int = 0  # seeds service-time draws
    warmup_s: float = 0.0  # arrivals before this are served but not counted
    spread: bool = True  # draw service times around p50 (False = always p50)
    interference: InterferenceModel = NO_INTERFERENCE  # slowdown between slices of a device
    queue_delay_s: float = 0.0  # queue delay of models without their own batching settings


@dataclass(frozen=True)
class RawRun:
    """Per arrival: outcome, latency, the slice that ran it and its batch size."""

    outcomes: Outcomes  # status, latency, slice index, batch rows per arrival
    slices: tuple[tuple[int, str, tuple[int, ...], int], ...]  # per slice index: (plan generation, plan slice id, cpus, size)
    switches: tuple[tuple[float, float, str], ...]  # (decided at, routing switched at, reason) per applied plan
    events: int  # events processed

    @property
    def status(self) -> np.ndarray:
        return self.outcomes.status

    @property
    def latency(self) -> np.ndarray:
        return self.outcomes.latency


class Simulator:
    """Runs a plan (and any plan changes) against a trace."""

    def __init__(
        self,
        plan: Plan,
        profiles: Profiles,
        slo_ms: Mapping[str, float],
        config: SimConfig | None = None,
        batching: Mapping[str, BatchingConfig] | None = None,
    ) -> None:
        self.plan = plan
        self.config = cfg = config or SimConfig()
        self.models = sorted({a.model for s in plan.slices for a in s.assignments} | set(slo_ms))
        self.model_index = {m: i for i, m in enumerate(self.models)}
        missing = [m for m in self.models if m not in slo_ms]
        if missing:
            raise InvalidArgumentError(f"simulate: no SLO for model(s) {', '.join(missing)}")
        self.slo_ms = dict(slo_ms)
        self.service = ServiceModel(profiles, cfg.interference, cfg.spread)
        self.batching = dict(batching or {})  # models without settings: planned batch, SimConfig delay
        self.service.tables(plan)  # fail early on a plan the profiles cannot serve

    def rates_rps(self, demand_rps: Mapping[str, float] | None = None) -> list[float]:
        """Per model index: the demand rate if given, else the plan's served rate."""
        if demand_rps is not None:
            return [float(demand_rps.get(m, 0.0)) for m in self.models]
        return [self.plan.served_rate_rps(m) for m in self.models]

    def run(self, trace: Trace, duration_s: float, changes: Sequence[PlanChange] = ()) -> SimResult:
        raw = self.run_raw(trace, changes)
        return self.summarise(trace[0], trace[1], raw.status, raw.latency, duration_s, raw.events)

    def run_raw(self, trace: Trace, changes: Sequence[PlanChange] = (), controller: Controller | None = None) -> RawRun:
        """Serve `trace` (model indices in `self.models` order). `changes` are plans applied at
        given times; a `controller` is asked every sampling interval, as the runtime does."""
        times, midx = trace
        fleet = SimFleet(
            self.service, self.batching, self.models, self.slo_ms, len(times), self.config, controller
        )
        fleet.apply(self.plan, 0.0, "initial plan", initial=True)
        for change in changes:
            fleet.push(change.at_s, PLAN_EVENT, change)
        if controller is not None:
            fleet.push(controller.config.sample_s, TICK_EVENT, None)
        return _loop(fleet, times.tolist(), midx.tolist())

    def summarise(self, times: np.ndarray, midx: np.ndarray, status: np.ndarray, latency: np.ndarray, duration_s: float, events: int) -> SimResult:
        warm = self.config.warmup_s
        counted = times >= warm
        window = max(duration_s - warm, 1e-9)
        per = tuple(
            summarise(m, status[counted & (midx == i)], latency[counted & (midx == i)], window) for i, m in enumerate(self.models)
        )
        total = summarise("TOTAL", status[counted], latency[counted], window)
        return SimResult(duration_s, warm, per, total, events)


def _loop(fleet: SimFleet, times: list[float], models: list[int]) -> RawRun:
    heap = fleet.heap
    pop = heapq.heappop
    events = 0
    for i, t in enumerate(times):
        while heap and heap[0][0] <= t:
            fleet.handle(pop(heap))
            events += 1
        events += 1
        fleet.arrive(i, models[i], t)
    while heap:
        ev = pop(heap)
        if ev[2] == TICK_EVENT and not fleet.busy():
            continue  # nothing left to serve: stop asking the controller
        fleet.handle(ev)
        events += 1
    fleet.finish()
    return RawRun(fleet.out, tuple(fleet.slice_info), tuple(fleet.switches), events)


def simulate(
    plan: Plan,
    profiles: Profiles,
    slo_ms: Mapping[str, float],
    trace: Trace,
    duration_s: float,
    config: SimConfig | None = None,
) -> SimResult:
    return Simulator(plan, profiles, slo_ms, config).run(trace, duration_s)


__all__ = ["PlanChange", "RawRun", "SimConfig", "SimSlice", "Simulator", "simulate"]
