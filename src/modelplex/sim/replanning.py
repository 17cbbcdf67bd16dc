"""Simulated serving with live re-planning: the simulator drives the same Controller as the
runtime (control/controller.py). Arrivals are fed to it in simulated time and it is asked every
sampling interval; each plan it decides serves the arrivals from the moment it would be ready
(decision + `apply_delay_s`, the runtime's worker start and switch), while requests already
routed finish on the plan they were routed to, as the runtime's old slices drain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelplex.control.controller import Controller, Replan
from modelplex.planning.context import Profiles
from modelplex.sim.arrivals import Trace
from modelplex.sim.engine import SimConfig, Simulator
from modelplex.sim.metrics import SimResult


@dataclass(frozen=True)
class ReplanRun:
    """A simulated run with re-planning."""

    result: SimResult  # per-model and total outcome over the whole trace
    replans: tuple[tuple[float, Replan], ...]  # (time the plan served from, the decision)


def simulate_replanning(
    controller: Controller,
    profiles: Profiles,
    trace: Trace,
    duration_s: float,
    expected_rps: Mapping[str, float] | None = None,
    config: SimConfig | None = None,
    apply_delay_s: float = 0.2,
) -> ReplanRun:
    cfg = config or SimConfig()
    models = sorted(controller.slo_ms)  # trace model indices follow this order
    times, midx = trace
    first = controller.initial(dict(expected_rps or {}), 0.0)
    controller.applied(first, 0.0)
    segments: list[tuple[float, Replan]] = [(0.0, first)]
    step = controller.config.sample_s
    j = 0
    t = step
    while t <= duration_s + 1e-9:
        k = int(np.searchsorted(times, t, side="left"))
        counts = np.bincount(midx[j:k], minlength=len(models)) if k > j else np.zeros(len(models), dtype=np.int64)
        for mi, count in enumerate(counts.tolist()):
            if count:
                controller.observe(models[mi], t, count)
        j = k
        decided = controller.step(t)
        if decided is not None:
            controller.applied(decided, t)
            segments.append((t + apply_delay_s, decided))
        t += step
    status = np.zeros(len(times), dtype=np.int8)
    latency = np.zeros(len(times), dtype=np.float64)
    events = 0
    bounds = [s for s, _ in segments[1:]] + [np.inf]
    slo = dict(controller.slo_ms)
    for (start, replan), end in zip(segments, bounds):
        lo = int(np.searchsorted(times, start, side="left"))
        hi = int(np.searchsorted(times, end, side="left"))
        if hi <= lo:
            continue
        sim = Simulator(replan.plan, profiles, slo, cfg)
        sub_idx = np.array([sim.model_index[models[m]] for m in midx[lo:hi]], dtype=np.int32)
        st, lat, ev = sim.run_raw((times[lo:hi], sub_idx))
        status[lo:hi] = st
        latency[lo:hi] = lat
        events += ev
    whole = Simulator(first.plan, profiles, slo, cfg)
    result = whole._summarise(times, np.array([whole.model_index[models[m]] for m in midx], dtype=np.int32), status, latency, duration_s, events)
    return ReplanRun(result, tuple(segments))
