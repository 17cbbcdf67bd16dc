"""The live driver of the pure Controller: feeds it arrivals, asks it every sampling interval,
applies its plans to the data plane, and keeps a log of what it decided."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from modelplex.control.controller import Controller, ControllerConfig, Replan
from modelplex.core.demand import Demand
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.plan import Plan
from modelplex.core.profile import Profile
from modelplex.planning import plan as make_plan
from modelplex.serving.dataplane import DataPlane


@dataclass
class AppliedPlan:
    """One re-plan as the runtime carried it out."""

    reason: str  # why the controller re-planned
    decided_at_s: float  # monotonic time of the decision
    plan_s: float  # seconds the policy took
    switch_s: float  # seconds from decision until routing switched to the new slices
    slices: int  # slices in the new plan
    error: str | None = None  # why it could not be applied, if so


@dataclass
class PlanDriver:
    """Runs the controller loop for a DataPlane serving under a policy."""

    plane: DataPlane  # the data plane to apply plans to
    policy: str  # planning policy name
    profiles: Sequence[Profile]  # latency profiles of the served models
    config: ControllerConfig = field(default_factory=ControllerConfig)  # re-planning thresholds
    expected_rps: dict[str, float] = field(default_factory=dict)  # rates for the first plan
    replanning: bool = True  # False: keep the initial plan
    devices: list[DeviceSpec] = field(default_factory=list)  # what to plan on (default: this host's CPU)
    log: list[AppliedPlan] = field(default_factory=list)  # what was applied, in order
    controller: Controller = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        devices = self.devices or [DeviceSpec("cpu0", DeviceKind.CPU, len(self.plane.cpus))]
        slo_ms: dict[str, float] = {}
        for name, book in self.plane.books.items():
            slo = book.config.batching.slo_ms
            if slo is None:
                raise ValueError(f"model {name} has no slo_ms; planning needs one (config.yaml)")
            slo_ms[name] = slo
        policy, profiles = self.policy, list(self.profiles)

        def planner(demands: Sequence[Demand]) -> Plan:
            return make_plan(demands, profiles, devices, policy=policy)

        self.controller = Controller(slo_ms, planner, self.config)
        self.plane.on_arrival = self.controller.observe

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
        now = time.monotonic()
        return {
            "policy": self.policy,
            "rates_rps": {m: round(r, 2) for m, r in self.controller.rates.rates(now).items()},
            "planned_for_rps": {m: round(r, 2) for m, r in self.controller.planned_for.items()},
            "replans": [
                {"reason": a.reason, "at_s": round(a.decided_at_s, 3), "plan_s": round(a.plan_s, 4),
                 "switch_s": round(a.switch_s, 3), "slices": a.slices, "error": a.error}
                for a in self.log[-20:]
            ],
        }

    def _decide(self, fn: Any) -> tuple[Replan | None, float]:
        t0 = time.perf_counter()
        replan: Replan | None = fn(time.monotonic())
        return replan, time.perf_counter() - t0

    async def _apply(self, decided: tuple[Replan | None, float]) -> None:
        replan, plan_s = decided
        if replan is None:
            return
        try:
            switch_s = await self.plane.apply_plan(replan.plan)
            self.log.append(AppliedPlan(replan.reason, replan.at_s, plan_s, switch_s, len(replan.plan.slices)))
            print(f"modelplex: applied plan ({replan.reason}): {len(replan.plan.slices)} slices, "
                  f"planned in {plan_s * 1e3:.1f} ms, switched in {switch_s:.2f} s", file=sys.stderr, flush=True)
        except Exception as exc:  # keep serving the old plan
            self.log.append(AppliedPlan(replan.reason, replan.at_s, plan_s, 0.0, len(replan.plan.slices), str(exc)))
            print(f"modelplex: could not apply plan ({replan.reason}): {exc}", file=sys.stderr, flush=True)
        finally:
            self.controller.applied(replan, time.monotonic())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sample_s)
            try:
                decided = self._decide(self.controller.step)
            except Exception as exc:  # e.g. demand the policy cannot place: keep the old plan
                print(f"modelplex: re-planning failed: {exc}", file=sys.stderr, flush=True)
                continue
            await self._apply(decided)
