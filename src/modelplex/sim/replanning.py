"""Simulated serving with live re-planning: the simulator drives the same Controller as the
runtime (control/controller.py), asked every sampling interval; each plan it decides is applied
through the same plan diff as the runtime's -- new slices start beside the old ones (their
measured start and load times from the profiles), routing switches when all are ready, and the
old slices drain their queues."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelplex.control.controller import Controller, Replan
from modelplex.core.model import BatchingConfig
from modelplex.planning.context import Profiles
from modelplex.sim.arrivals import Trace
from modelplex.sim.engine import SimConfig, Simulator
from modelplex.sim.metrics import SimResult


@dataclass(frozen=True)
class ReplanRun:
    """A simulated run with re-planning."""

    result: SimResult  # per-model and total outcome over the whole trace
    replans: tuple[tuple[float, Replan], ...]  # (routing switched at, the decision) per applied plan


def simulate_replanning(
    controller: Controller,
    profiles: Profiles,
    trace: Trace,
    duration_s: float,
    expected_rps: Mapping[str, float] | None = None,
    config: SimConfig | None = None,
    batching: Mapping[str, BatchingConfig] | None = None,
) -> ReplanRun:
    """Serve `trace` (model indices in sorted model-name order) from the controller's initial
    plan, re-planning as it decides."""
    first = controller.initial(dict(expected_rps or {}), 0.0)
    controller.applied(first, 0.0)
    sim = Simulator(first.plan, profiles, controller.slo_ms, config, batching)
    if sim.models != sorted(controller.slo_ms):
        raise ValueError("the controller's models and the plan's differ")
    raw = sim.run_raw(trace, controller=controller)
    result = sim.summarise(trace[0], trace[1], raw.status, raw.latency, duration_s, raw.events)
    decided = [r for r in controller.history if r is not first]
    applied = [(switched, replan) for (_, switched, _), replan in zip(raw.switches[1:], decided)]
    return ReplanRun(result, ((0.0, first), *applied))
