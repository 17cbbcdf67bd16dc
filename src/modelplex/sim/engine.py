"""Discrete-event simulation of a plan: a heap of (time, seq, event) in a short loop.

It drives the serving policy objects the live runtime drives -- one BatchQueue per (slice,
model) and, on slices several models share, the DutyCycleScheduler -- and adds only the clock
and an executor that draws service times: lognormal with the profile's p50 as median and its
p99 as 99th percentile, times the interference slowdown the plan's layout predicts.
Arrivals are pre-generated (sorted arrays) and merged with the heap; each model's requests go to
its slices at random in proportion to the plan's traffic shares.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning.context import Curve, Profiles, find_profile, index_profiles
from modelplex.planning.dutycycle import DutyCycleScheduler
from modelplex.planning.interference import NO_INTERFERENCE, InterferenceModel, merged_features
from modelplex.serving.batching import Batch, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.serving.latency import LatencyEstimator
from modelplex.sim.arrivals import Trace
from modelplex.sim.metrics import EXPIRED, LATE, OK, REJECTED, SimResult, summarise

Z99 = 2.3263478740408408  # standard normal 99th percentile
_COMPLETE, _WAKE = 0, 1


@dataclass(frozen=True)
class SimConfig:
    """Settings of one run."""

    seed: int = 0  # seeds routing and service-time draws
    warmup_s: float = 0.0  # arrivals before this are served but not counted
    spread: bool = True  # draw service times around p50 (False = always p50)
    interference: InterferenceModel = NO_INTERFERENCE  # slowdown between slices of a device
    queue_delay_s: float = 0.0  # BatchQueue max_queue_delay_s (0 = dispatch at once)


def _table_prior(p50_s: list[float]) -> Callable[[int], float]:
    """The estimator's prior: the profile's median latency of a batch (beyond the table: linear)."""
    top = len(p50_s) - 1

    def prior(batch: int) -> float:
        b = max(batch, 1)
        return p50_s[b] if b <= top else p50_s[top] * b / top

    return prior


class _Lane:
    """One model's queue on one slice, with its service-time table."""

    __slots__ = ("queue", "p50_s", "sigma", "slo_s", "model", "slice")

    def __init__(self, queue: BatchQueue[int], p50_s: list[float], sigma: list[float], slo_s: float, model: int, slice_: int) -> None:
        self.queue = queue  # the serving policy object
        self.p50_s = p50_s  # median latency of batch b at [b]
        self.sigma = sigma  # lognormal sigma of batch b at [b]
        self.slo_s = slo_s  # the model's SLO
        self.model = model  # model index
        self.slice = slice_  # slice index


class _Slice:
    __slots__ = ("lanes", "sched", "busy", "wake_s")

    def __init__(self, lanes: list[int], sched: DutyCycleScheduler | None) -> None:
        self.lanes = lanes  # lane indices
        self.sched = sched  # turn-taking when several models share the slice
        self.busy = False  # a batch is running
        self.wake_s = math.inf  # pending wake-up event time


def _alphas(plan: Plan, feats: Mapping[str, Mapping[str, float]], model: InterferenceModel) -> list[float]:
    caps = {d.device_id: d.capacity for d in plan.devices}
    loads = [(merged_features([feats.get(a.model, {}) for a in s.assignments]), s.slice.size / caps[s.slice.device_id]) for s in plan.slices]
    out = []
    for i, s in enumerate(plan.slices):
        nb = [loads[j] for j, o in enumerate(plan.slices) if j != i and o.slice.device_id == s.slice.device_id]
        out.append(model.alpha(loads[i], nb))
    return out


class Simulator:
    """Runs a plan against a trace."""

    def __init__(self, plan: Plan, profiles: Profiles, slo_ms: Mapping[str, float], config: SimConfig | None = None) -> None:
        self.plan = plan
        self.config = cfg = config or SimConfig()
        self.models = sorted({a.model for s in plan.slices for a in s.assignments} | set(slo_ms))
        self.model_index = {m: i for i, m in enumerate(self.models)}
        missing = [m for m in self.models if m not in slo_ms]
        if missing:
            raise InvalidArgumentError(f"simulate: no SLO for model(s) {', '.join(missing)}")
        index = index_profiles(profiles)
        kinds = {d.device_id: d.kind for d in plan.devices}
        feats = {m: dict(p.features) for (m, _), p in index.items()}
        alphas = _alphas(plan, feats, cfg.interference)
        self.lanes: list[_Lane] = []
        self.slices: list[_Slice] = []
        for si, s in enumerate(plan.slices):
            lane_ids: list[int] = []
            for a in s.assignments:
                if s.slice.device_id not in kinds:
                    raise InvalidArgumentError(f"simulate: slice {s.slice_id} is on an unknown device")
                found = find_profile(index, a.model, kinds[s.slice.device_id])
                if found is None:
                    raise InvalidArgumentError(f"simulate: model {a.model}: no profile for {kinds[s.slice.device_id].value}")
                prof, unit = found
                c50, c99 = Curve(prof, "p50"), Curve(prof, "p99")
                size = s.slice.size * unit
                p50 = [0.0] + [c50.latency_ms(size, b) * alphas[si] / 1e3 for b in range(1, a.batch + 1)]
                p99 = [0.0] + [c99.latency_ms(size, b) * alphas[si] / 1e3 for b in range(1, a.batch + 1)]
                sigma = [0.0] + [
                    (math.log(max(p99[b], p50[b]) / p50[b]) / Z99 if cfg.spread and p50[b] > 0 else 0.0) for b in range(1, a.batch + 1)
                ]
                est = LatencyEstimator(prior_s=_table_prior(p50))
                queue: BatchQueue[int] = BatchQueue(BatchPolicyConfig(max_batch_size=a.batch, max_queue_delay_s=cfg.queue_delay_s), est)
                lane_ids.append(len(self.lanes))
                self.lanes.append(_Lane(queue, p50, sigma, slo_ms[a.model] / 1e3, self.model_index[a.model], si))
            sched = DutyCycleScheduler([a.model for a in s.assignments], s.duty_cycle_ms) if len(lane_ids) > 1 else None
            self.slices.append(_Slice(lane_ids, sched))
        # routing: per model, its lanes and cumulative shares
        self._routes: list[tuple[np.ndarray, np.ndarray]] = []
        for m in self.models:
            ids = [i for i, ln in enumerate(self.lanes) if self.models[ln.model] == m]
            shares = np.array([next(a.share for a in plan.slices[self.lanes[i].slice].assignments if a.model == m) for i in ids], dtype=np.float64)
            cum = np.cumsum(shares) / shares.sum() if len(ids) else np.empty(0)
            self._routes.append((np.asarray(ids, dtype=np.int64), cum))

    def rates_rps(self, demand_rps: Mapping[str, float] | None = None) -> list[float]:
        """Per model index: the demand rate if given, else the plan's served rate."""
        if demand_rps is not None:
            return [float(demand_rps.get(m, 0.0)) for m in self.models]
        return [self.plan.served_rate_rps(m) for m in self.models]

    def run(self, trace: Trace, duration_s: float) -> SimResult:
        status, latency, events = self.run_raw(trace)
        return self._summarise(trace[0], trace[1], status, latency, duration_s, events)

    def run_raw(self, trace: Trace) -> tuple[np.ndarray, np.ndarray, int]:
        """Per arrival its outcome code and latency (seconds), and the events processed."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        times, midx = trace
        n = len(times)
        # route every arrival; arrivals of a model with no slice are dropped
        lane_of = np.full(n, -1, dtype=np.int64)
        for mi, (ids, cum) in enumerate(self._routes):
            sel = np.flatnonzero(midx == mi)
            if len(ids) and len(sel):
                pick = np.searchsorted(cum, rng.random(len(sel)), side="right")
                lane_of[sel] = ids[np.minimum(pick, len(ids) - 1)]
        noise = np.exp(rng.standard_normal(n + 16)).tolist()  # one draw per batch at most
        status = np.zeros(n, dtype=np.int8)
        latency = np.zeros(n, dtype=np.float64)
        st = status  # local aliases for the hot loop
        lat = latency
        lanes = self.lanes
        slices = self.slices
        heap: list[tuple[float, int, int, int, int, object]] = []
        push, pop = heapq.heappush, heapq.heappop
        seq = 0
        draw = 0
        events = 0

        def start(sl_i: int, now: float) -> None:
            nonlocal seq, draw
            sl = slices[sl_i]
            if sl.busy:
                return
            order = sl.lanes if sl.sched is None else [sl.lanes[k] for k in sl.sched.candidates(now)]
            wake = math.inf
            for k, lane_i in enumerate(order):
                ln = lanes[lane_i]
                q = ln.queue
                while True:
                    batch = q.next_batch(now)
                    if batch is None:
                        break
                    for r in batch.expired:
                        st[r.payload] = EXPIRED
                    if batch.requests:
                        rows = len(batch.requests)
                        p50 = ln.p50_s[rows]
                        sig = ln.sigma[rows]
                        service = p50 * noise[draw] ** sig if sig > 0 else p50
                        draw += 1
                        sl.busy = True
                        if sl.sched is not None:
                            sl.sched.started(sl.lanes.index(lane_i), now, batch.predicted_s)
                        seq += 1
                        push(heap, (now + service, seq, _COMPLETE, sl_i, lane_i, (batch, service)))
                        return
                    if not batch.expired:
                        break
                if len(q):
                    w = q.wake_at(now)
                    if w is not None and w < wake:
                        wake = max(w, now + 1e-9)
            if wake < sl.wake_s:
                sl.wake_s = wake
                seq += 1
                push(heap, (wake, seq, _WAKE, sl_i, -1, None))

        def handle(ev: tuple[float, int, int, int, int, object]) -> None:
            now, _, kind, sl_i, lane_i, data = ev
            sl = slices[sl_i]
            if kind == _COMPLETE:
                batch, service = cast(tuple[Batch[int], float], data)
                ln = lanes[lane_i]
                ln.queue.completed(batch, service, now)
                slo = ln.slo_s
                for r in batch.requests:
                    i = r.payload
                    d = now - r.arrival_s
                    lat[i] = d
                    st[i] = OK if d <= slo else LATE
                sl.busy = False
                if sl.sched is not None:
                    sl.sched.finished(now)
            else:
                if now < sl.wake_s:
                    return  # superseded
                sl.wake_s = math.inf
            start(sl_i, now)

        t_list = times.tolist()
        lane_list = lane_of.tolist()
        for i in range(n):
            t = t_list[i]
            while heap and heap[0][0] <= t:
                handle(pop(heap))
                events += 1
            events += 1
            lane_i = lane_list[i]
            if lane_i < 0:
                st[i] = REJECTED
                continue
            ln = lanes[lane_i]
            adm = ln.queue.submit(QueuedRequest(t, t + ln.slo_s, 1, i), t)
            if not adm.admitted:
                st[i] = REJECTED
                continue
            if not slices[ln.slice].busy:
                start(ln.slice, t)
        while heap:
            handle(pop(heap))
            events += 1
        for ln in lanes:  # anything left is dropped (should not happen: queues drain)
            for r in ln.queue.drain():
                st[r.payload] = EXPIRED
        return status, latency, events

    def _summarise(self, times: np.ndarray, midx: np.ndarray, status: np.ndarray, latency: np.ndarray, duration_s: float, events: int) -> SimResult:
        warm = self.config.warmup_s
        counted = times >= warm
        window = max(duration_s - warm, 1e-9)
        per = tuple(
            summarise(m, status[counted & (midx == i)], latency[counted & (midx == i)], window) for i, m in enumerate(self.models)
        )
        total = summarise("TOTAL", status[counted], latency[counted], window)
        return SimResult(duration_s, warm, per, total, events)


def simulate(
    plan: Plan,
    profiles: Profiles,
    slo_ms: Mapping[str, float],
    trace: Trace,
    duration_s: float,
    config: SimConfig | None = None,
) -> SimResult:
    return Simulator(plan, profiles, slo_ms, config).run(trace, duration_s)

