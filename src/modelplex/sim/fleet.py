"""The simulated fleet: the slices of the plans being served, their schedulers and routers, the
event heap, and plan changes applied through the same plan diff as the live server."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from modelplex.control.controller import Controller
from modelplex.core.model import BatchingConfig
from modelplex.core.plan import Plan
from modelplex.dispatch.batching import QueuedRequest
from modelplex.dispatch.deadlines import ANSWER_MARGIN_S
from modelplex.dispatch.router import Router
from modelplex.dispatch.scheduler import Dispatch, SliceScheduler, make_lane
from modelplex.planning.diff import PlanDiff, diff
from modelplex.planning.service import ServiceModel, ServiceTable
from modelplex.sim.metrics import EXPIRED, LATE, OK, REJECTED

if TYPE_CHECKING:
    from modelplex.sim.engine import SimConfig

COMPLETE_EVENT, WAKE_EVENT, SWITCH_EVENT, PLAN_EVENT, TICK_EVENT = 0, 1, 2, 3, 4
Event = tuple[float, int, int, int, object]  # (time, seq, kind, slice index, data)


@dataclass(frozen=True)
class PlanChange:
    """A plan to apply at a given time (its workers start then; routing switches when ready)."""

    at_s: float  # when the change is decided
    plan: Plan  # the new plan
    reason: str = "scheduled"  # for the switch log


@dataclass(frozen=True)
class Outcomes:
    """Per arrival (by trace index)."""

    status: np.ndarray  # outcome code (sim.metrics)
    latency: np.ndarray  # seconds from arrival to answer
    slice: np.ndarray  # index of the slice that ran it (-1: none)
    batch: np.ndarray  # rows of the batch it ran in (0: none)


class SimSlice:
    """One simulated slice: its scheduler, service tables and pending wake-up."""

    __slots__ = ("sched", "tables", "wake_s", "index")

    def __init__(self, sched: SliceScheduler[int], tables: dict[str, ServiceTable], index: int) -> None:
        self.sched = sched  # the dispatch policy of the slice
        self.tables = tables  # model -> service times here
        self.wake_s = float("inf")  # time of the pending wake-up event
        self.index = index  # position in the fleet's slice list


@dataclass
class _Pending:
    """A plan whose workers are starting."""

    diff: PlanDiff  # actions from the running plan
    plan: Plan  # the plan being applied
    fresh: dict[str, SimSlice]  # new-plan slice id -> starting slice
    decided_s: float  # when it was decided
    reason: str  # why


class SimFleet:
    """Everything a simulated run changes; `handle` processes one event."""

    def __init__(
        self, service: ServiceModel, batching: Mapping[str, BatchingConfig], models: Sequence[str],
        slo_ms: Mapping[str, float], arrivals: int, config: "SimConfig", controller: Controller | None = None,
    ) -> None:
        self.service = service
        self.batching = batching  # model -> queue settings
        self.default_delay_s = config.queue_delay_s  # queue delay of models without settings
        self.models = list(models)  # model index -> name
        # deadline after arrival, per model index (the answer's margin kept, as the server does)
        self.slo_s = [slo_ms[m] / 1e3 - ANSWER_MARGIN_S for m in models]
        self._slo_by_name = dict(zip(self.models, self.slo_s))
        self.controller = controller  # re-plans on its own when given
        self.heap: list[Event] = []
        self._seq = 0
        self.out = Outcomes(np.zeros(arrivals, np.int8), np.zeros(arrivals), np.full(arrivals, -1, np.int32), np.zeros(arrivals, np.int32))
        self._noise = np.exp(np.random.default_rng(config.seed).standard_normal(arrivals + 16)).tolist()
        self._draw = 0
        self.slices: list[SimSlice] = []
        self._by_sched: dict[str, SimSlice] = {}  # scheduler's slice id -> slice
        self.slice_info: list[tuple[int, str, tuple[int, ...], int]] = []
        self.by_plan_id: dict[str, SimSlice] = {}  # running plan's slice id -> slice
        self.routers: list[Router[int] | None] = [None] * len(models)
        self.running: Plan | None = None
        self.pending: _Pending | None = None
        self._waiting: list[tuple[Plan, str]] = []  # changes decided while another was starting
        self.switches: list[tuple[float, float, str]] = []
        self._counts = [0] * len(models)  # arrivals since the last controller tick

    # ---- events --------------------------------------------------------------------------
    def push(self, at_s: float, kind: int, data: object, slice_index: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (at_s, self._seq, kind, slice_index, data))

    def handle(self, ev: Event) -> None:
        now, _, kind, si, data = ev
        if kind == COMPLETE_EVENT:
            self._complete(self.slices[si], cast(Dispatch[int], data), now)
        elif kind == WAKE_EVENT:
            sl = self.slices[si]
            if now < sl.wake_s:
                return  # superseded
            sl.wake_s = float("inf")
            self.pump(sl, now)
        elif kind == SWITCH_EVENT:
            self._switch(now)
        elif kind == PLAN_EVENT:
            change = cast(PlanChange, data)
            self.apply(change.plan, now, change.reason)
        else:
            self._tick(now)

    def arrive(self, i: int, model: int, t: float) -> None:
        self._counts[model] += 1
        router = self.routers[model]
        if router is None:
            self.out.status[i] = REJECTED
            return
        routed = router.route(QueuedRequest(t, t + self.slo_s[model], 1, i), t)
        if routed.slice is None:
            self.out.status[i] = REJECTED
            return
        if not routed.slice.turns.busy:  # a busy slice is pumped by its next completion
            self.pump(self._by_sched[routed.slice.slice_id], t)

    def pump(self, sl: SimSlice, now: float) -> None:
        """Decide and execute: run every batch the scheduler dispatches, then set the wake-up."""
        out = self.out
        while (d := sl.sched.schedule(now)) is not None:
            for _, r in d.expired:
                out.status[r.payload] = EXPIRED
            if d.requests:
                service = sl.tables[d.model].time_s(d.rows, self._noise[self._draw % len(self._noise)])
                self._draw += 1
                self.push(now + service, COMPLETE_EVENT, d, sl.index)
        wake = sl.sched.wake_at(now)
        if wake is not None and wake < sl.wake_s:
            sl.wake_s = wake
            self.push(wake, WAKE_EVENT, None, sl.index)

    def _complete(self, sl: SimSlice, d: Dispatch[int], now: float) -> None:
        sl.sched.completed(d, now - d.started_s, now)
        out, rows, slo = self.out, d.rows, self._slo_by_name[d.model]
        for r in d.requests:
            i = r.payload
            waited = now - r.arrival_s
            out.latency[i] = waited
            out.status[i] = OK if waited <= slo else LATE
            out.slice[i] = sl.index
            out.batch[i] = rows
        self.pump(sl, now)

    # ---- plans ---------------------------------------------------------------------------
    def apply(self, plan: Plan, now: float, reason: str, initial: bool = False) -> None:
        """Start the new plan's slices (ready after their measured start times; at once for the
        initial plan); routing switches when all are ready."""
        if self.pending is not None:
            self._waiting.append((plan, reason))  # one change at a time: the runtime's plan lock
            return
        d = diff(self.running, plan)
        tables = self.service.tables(plan)
        kinds = {dev.device_id: dev.kind.value for dev in plan.devices}
        fresh: dict[str, SimSlice] = {}
        ready_s = 0.0
        generation = len(self.switches)
        for start in d.start:
            loads = d.models_on(start.slice_id)
            prior = {a.model: tables[(start.slice_id, a.model)] for a in loads}
            lanes = [make_lane(a.model, a.batch, self.batching.get(a.model), prior[a.model].median_s, self.default_delay_s) for a in loads]
            sched: SliceScheduler[int] = SliceScheduler(f"g{generation}/{start.slice_id}", lanes, start.duty_cycle_ms, start.processes)
            sl = SimSlice(sched, prior, len(self.slices))
            self.slices.append(sl)
            self._by_sched[sched.slice_id] = sl
            self.slice_info.append((generation, start.slice_id, start.slice.cpus, start.slice.size))
            fresh[start.slice_id] = sl
            if not initial:
                ready_s = max(ready_s, self.service.start_s([a.model for a in loads], kinds[start.slice.device_id]))
        for keep in d.keep:
            kept = self.by_plan_id[keep.running_id]
            kept.tables = {m: tables[(keep.slice_id, m)] for m in kept.tables}
        self.pending = _Pending(d, plan, fresh, now, reason)
        if initial:
            self._switch(now)
        else:
            self.push(now + ready_s, SWITCH_EVENT, None)

    def _switch(self, now: float) -> None:
        p = self.pending
        assert p is not None
        slices = dict(p.fresh)
        for keep in p.diff.keep:
            slices[keep.slice_id] = self.by_plan_id[keep.running_id]
        for drain in p.diff.drain:
            self.by_plan_id[drain.running_id].sched.refuse("slice retired")
        self.routers = [None] * len(self.models)
        index = {m: i for i, m in enumerate(self.models)}
        for route in p.diff.route:
            if route.model in index:
                self.routers[index[route.model]] = Router(route.model, [(slices[sid].sched, w) for sid, w in route.targets])
        self.by_plan_id = slices
        self.running, self.pending = p.plan, None
        self.switches.append((p.decided_s, now, p.reason))
        if self.controller is not None and self.controller.pending is not None:
            self.controller.applied(self.controller.pending, now)
        if self._waiting:
            plan, reason = self._waiting.pop(0)
            self.apply(plan, now, reason)

    def _tick(self, now: float) -> None:
        ctl = self.controller
        assert ctl is not None
        for mi, count in enumerate(self._counts):
            if count:
                ctl.observe(self.models[mi], now, count)
        self._counts = [0] * len(self.models)
        decided = ctl.step(now)
        if decided is not None:
            self.apply(decided.plan, now, decided.reason)
        self.push(now + ctl.config.sample_s, TICK_EVENT, None)

    # ---- helpers -------------------------------------------------------------------------
    def busy(self) -> bool:
        """Some slice still has queued or running work."""
        return any(not sl.sched.idle for sl in self.slices)

    def finish(self) -> None:
        for sl in self.slices:  # anything left is dropped (should not happen: queues drain)
            for _, r in sl.sched.drain():
                self.out.status[r.payload] = EXPIRED
