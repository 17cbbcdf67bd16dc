"""The live driver of the pure Controller: feeds it arrivals, asks it every sampling interval,
applies its plans to the data plane, and keeps a log of what it decided."""

from __future__ import annotations

import asyncio
import logging
import time

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelplex.control.controller import Controller, ControllerConfig, Replan
from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.core.plan import Plan
from modelplex.core.profile import Profile
from modelplex.planning.frontend import kept_words, planner_beside_frontend
from modelplex.serving.dataplane import DataPlane

log = logging.getLogger(__name__)


@dataclass
class AppliedPlan:
    """One re-plan as the runtime carried it out."""

    reason: str  # why the controller re-planned
    decided_at_s: float  # monotonic time of the decision
    plan_s: float  # seconds the policy took
    switch_s: float  # seconds from decision until routing switched to the new slices
    slices: int  # slices in the new plan
    changes_workers: bool = False  # it started or retired workers (not only new rates or routes)
    error: str | None = None  # why it could not be applied, if so


def build_controller(
    configs: Sequence[ModelConfig], policy: str, profiles: Sequence[Profile], devices: Sequence[DeviceSpec],
    config: ControllerConfig,
) -> Controller:
    """The pure re-planning controller for the models of a repository (each needs an slo_ms). On
    a CPU host its plans keep cores for the frontend (planning.frontend), for the CPU per request
    the controller measures."""
    slo_ms: dict[str, float] = {}
    for c in configs:
        slo = c.batching.slo_ms
        if slo is None:
            raise InvalidArgumentError(f"model {c.model.name} has no slo_ms; planning needs one (config.yaml)")
        slo_ms[c.model.name] = slo
    return Controller(slo_ms, planner_beside_frontend(policy, profiles, devices), config)


@dataclass
class PlanDriver:
    """Runs the controller loop for a DataPlane serving under a policy."""

    plane: DataPlane  # the data plane to apply plans to (it reports arrivals to the controller)
    controller: Controller  # decides when to re-plan, and the plan
    policy: str  # planning policy name, for status
    expected_rps: dict[str, float] = field(default_factory=dict)  # rates for the first plan
    replanning: bool = True  # False: keep the initial plan
    log: list[AppliedPlan] = field(default_factory=list)  # what was applied, in order
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _cpu_mark_s: float = field(default_factory=time.process_time, init=False)  # this process's CPU at the last report

    async def start(self) -> None:
        """Apply the initial plan, then watch rates in the background."""
        replan = self._decide(lambda now: self.controller.initial(self.expected_rps, now))
        await self._apply(replan)
        if self.replanning:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def status(self) -> dict[str, Any]:
        now = self.plane.clock.now()
        return {
            "policy": self.policy,
            "frontend": {"us_per_request": round(self.controller.frontend.us_per_request, 1),
                         "samples": self.controller.frontend.samples, "kept_cores": self.frontend_cores()},
            "rates_rps": {m: round(r, 2) for m, r in self.controller.rates.rates(now).items()},
            "planned_for_rps": {m: round(r, 2) for m, r in self.controller.planned_for.items()},
            "replans": [
                {"reason": a.reason, "at_s": round(a.decided_at_s, 3), "plan_s": round(a.plan_s, 4),
                 "switch_s": round(a.switch_s, 3), "slices": a.slices, "changes_workers": a.changes_workers,
                 "error": a.error}
                for a in self.log[-20:]
            ],
        }

    def frontend_cores(self) -> list[int]:
        """The host cores this process has to itself (those the running plan leaves it)."""
        return sorted(self.plane.slices.frontend_own)

    def _decide(self, fn: Callable[[float], Replan | None]) -> tuple[Replan | None, float]:
        t0 = time.perf_counter()
        replan: Replan | None = fn(self.plane.clock.now())
        return replan, time.perf_counter() - t0

    async def _apply(self, decided: tuple[Replan | None, float]) -> None:
        replan, plan_s = decided
        if replan is None:
            return
        try:
            applied = await self.plane.apply_plan(replan.plan)
            frontend = self._frontend_words(replan)
            self.log.append(AppliedPlan(replan.reason, replan.at_s, plan_s, applied.switch_s, len(replan.plan.slices),
                                        applied.changes_workers))
            self.plane.decisions.record(
                replan.at_s, "planner", "initial plan" if not self.log[:-1] else "re-plan",
                (f"{replan.reason}: " if self.log[:-1] else "") + f"{len(replan.plan.slices)} slices ({applied.started} started, {applied.kept} kept, "
                f"{applied.drained} retired), planned in {plan_s * 1e3:.1f} ms, switched in {applied.switch_s:.2f} s; "
                + frontend)
            log.info("applied plan (%s): %d slices (%d started, %d kept, %d retired), planned in %.1f ms, switched in %.2f s; %s",
                     replan.reason, len(replan.plan.slices), applied.started, applied.kept, applied.drained,
                     plan_s * 1e3, applied.switch_s, frontend)
        except Exception as exc:  # keep serving the old plan
            self.log.append(AppliedPlan(replan.reason, replan.at_s, plan_s, 0.0, len(replan.plan.slices), error=str(exc)))
            self.plane.decisions.record(replan.at_s, "planner", "re-plan", f"{replan.reason}: not applied: {exc}", ok=False)
            log.error("could not apply plan (%s): %s", replan.reason, exc)
        finally:
            self.controller.applied(replan, self.plane.clock.now())

    def _frontend_words(self, replan: Replan) -> str:
        return f"{kept_words(self.frontend_cores())} (it costs {replan.frontend_us:.0f} µs of CPU per request)"

    async def _loop(self) -> None:
        while True:
            await self.plane.clock.sleep(self.controller.config.sample_s)
            cpu_s = time.process_time()
            self.controller.frontend_cpu(cpu_s - self._cpu_mark_s)
            self._cpu_mark_s = cpu_s
            try:
                decided = self._decide(self.controller.step)
            except Exception as exc:  # e.g. demand the policy cannot place: keep the old plan
                log.error("re-planning failed: %s", exc)
                continue
            await self._apply(decided)
