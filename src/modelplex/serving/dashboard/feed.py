"""The dashboard's data: sampled once per interval in a background task from the statistics the
data plane keeps anyway (never per request), kept as per-second series, and served as JSON that
is encoded once per sample however many clients poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import NotFoundError
from modelplex.core.plan import Plan, SlicePlan
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.timeline import Counters, Decision, TimeSeries

log = logging.getLogger(__name__)

PlanRenderer = Callable[[Plan], bytes]  # the plan's picture as PNG (app/plan_picture.py)
_DECISIONS_SHOWN = 100  # the data carries at most this many decisions
_CACHED_ANSWERS = 16  # encoded answers kept per sample (one per distinct `after` asked)


@dataclass
class DashboardFeed:
    """Samples the data plane every `interval_s` and answers the dashboard's data requests."""

    plane: DataPlane  # what is shown
    interval_s: float = 1.0  # sampling period (one point per model per period)
    window_s: float = 300.0  # how far back the series go
    render_plan: PlanRenderer | None = None  # draws the plan's picture (None: no picture)
    series: TimeSeries = field(init=False)  # the per-model series
    plan_key: int = field(default=0, init=False)  # changes whenever another plan is served
    _plan: Plan | None = field(default=None, init=False)  # the plan plan_key belongs to
    _busy_s: dict[str, float] = field(default_factory=dict, init=False)  # slice id -> compute seconds at the last sample
    _last_s: float | None = field(default=None, init=False)  # time of the last sample
    _live: dict[str, Any] = field(default_factory=dict, init=False)  # everything but the series, at the last sample
    _answers: dict[float | None, bytes] = field(default_factory=dict, init=False)  # `after` -> encoded answer
    _picture: tuple[Plan, bytes] | None = field(default=None, init=False)  # the last plan drawn, and its PNG
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.series = TimeSeries(max(1, round(self.window_s / self.interval_s)))

    def start(self) -> None:
        """Take the baseline sample now, then one every interval in the background."""
        self.sample(self.plane.clock.now())
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            await self.plane.clock.sleep(self.interval_s)
            try:
                self.sample(self.plane.clock.now())
            except Exception:  # the dashboard must never take the server down
                log.exception("dashboard sample failed")

    def sample(self, now: float) -> None:
        """One sample: the counters' differences into the series, and a snapshot of the slices."""
        books = self.plane.books
        self.series.sample(now, {n: Counters.of(b.stats, b.config.batching.slo_ms) for n, b in books.items()})
        plan = self.plane.plan
        if plan is not self._plan:
            self._plan, self.plan_key = plan, self.plan_key + 1
        dt_s = now - self._last_s if self._last_s is not None and now > self._last_s else None
        self._last_s = now
        self._live = {
            "now_s": round(now, 3),
            "interval_s": self.interval_s,
            "window_s": self.window_s,
            "plan": None if plan is None else {
                "policy": plan.policy, "key": self.plan_key, "slices": len(plan.slices),
                "unserved": {m: round(r, 2) for m, r in plan.unserved.items()},
                "picture": self.render_plan is not None,
            },
            "devices": self._devices(plan, dt_s),
            "models": self._models(),
            "decisions": [d.to_json() for d in self._decisions(now)],
        }
        self._answers.clear()

    def data(self, after: float | None) -> bytes:
        """The JSON answer: the snapshot, and the series' points after `after` (all: None)."""
        times = self.series.times
        key = None if after is None else (-1.0 if times and after >= times[-1] else after)
        cached = self._answers.get(key)
        if cached is None:
            doc = dict(self._live)
            doc["series"] = self.series.columns(self._live.get("models", {}), after)
            cached = orjson.dumps(doc)
            if len(self._answers) < _CACHED_ANSWERS:
                self._answers[key] = cached
        return cached

    async def plan_picture(self) -> bytes:
        """The served plan's picture as PNG, drawn once per plan in a thread."""
        plan = self.plane.plan
        if plan is None:
            raise NotFoundError("no plan is served (the server was started without --policy and none was posted)")
        if self.render_plan is None:
            raise NotFoundError("this server draws no plan pictures")
        if self._picture is None or self._picture[0] is not plan:
            self._picture = (plan, await asyncio.to_thread(self.render_plan, plan))
        return self._picture[1]

    # ---- the snapshot ----------------------------------------------------------------------
    def _models(self) -> dict[str, Any]:
        routes = self.plane.slices.routes
        out: dict[str, Any] = {}
        for name, book in sorted(self.plane.books.items()):
            route = routes.get(name)
            out[name] = {
                "version": book.config.model.version,
                "slo_ms": book.config.batching.slo_ms,
                "max_batch": book.config.batching.max_batch_size,
                "slices": [s.slice_id for s in route.slices] if route is not None else [],
                "ready": route is not None and self.plane.slices.model_ready(name),
                "failed": self.plane.failed.get(name),
            }
        return out

    def _devices(self, plan: Plan | None, dt_s: float | None) -> list[dict[str, Any]]:
        """Devices with their running slices, each joined with its slice of the plan."""
        planned: list[SlicePlan] = list(plan.slices) if plan is not None else []
        runners = self.plane.slices.runners
        devices: dict[str, dict[str, Any]] = {}
        if plan is not None:
            for d in plan.devices:
                devices[d.device_id] = {"device_id": d.device_id, "kind": d.kind.value, "capacity": d.capacity, "slices": []}
        busy_now: dict[str, float] = {}
        for desc in self.plane.slices.describe():
            runner = runners.get(desc["slice_id"])
            if runner is None:
                continue
            spec = runner.slice
            busy_now[desc["slice_id"]] = runner.busy_s
            dev = devices.setdefault(spec.device_id, self._device_without_plan(spec))
            sp = _take_planned(planned, spec)
            busy = None
            if dt_s is not None and desc["slice_id"] in self._busy_s:
                busy = min(1.0, max(0.0, (runner.busy_s - self._busy_s[desc["slice_id"]]) / dt_s))
            dev["slices"].append(_slice_json(desc, spec, sp, runner.batch_sizes, busy))
        self._busy_s = busy_now
        return list(devices.values())

    def _device_without_plan(self, spec: SliceSpec) -> dict[str, Any]:
        cpu = bool(spec.cpus)
        return {"device_id": spec.device_id, "kind": "cpu" if cpu else "gpu",
                "capacity": len(self.plane.cpus) if cpu else 100, "slices": []}

    def _decisions(self, now: float) -> list[Decision]:
        """Plans applied (planner, API) and the model-less autoscaler's steps, oldest first."""
        start = now - self.window_s
        found = self.plane.decisions.since(start)
        if self.plane.modelless is not None:
            for d in list(self.plane.modelless.decisions):
                at_s = float(d.get("at_s", 0.0))
                if at_s >= start:
                    found.append(Decision(at_s, "autoscaler", str(d.get("action", "")), str(d.get("reason", ""))))
        found.sort(key=lambda d: d.at_s)
        return found[-_DECISIONS_SHOWN:]


def _take_planned(planned: list[SlicePlan], spec: SliceSpec) -> SlicePlan | None:
    """The plan's slice with this spec (each matched once), if any."""
    for i, sp in enumerate(planned):
        if sp.slice == spec:
            return planned.pop(i)
    return None


def _slice_json(desc: dict[str, Any], spec: SliceSpec, sp: SlicePlan | None, batches: dict[str, int],
                busy: float | None) -> dict[str, Any]:
    assigned = {a.model: a for a in sp.assignments} if sp is not None else {}
    models = []
    for name in desc["models"]:
        a = assigned.get(name)
        models.append({
            "model": name, "batch": batches.get(name), "queued_rows": desc["queued_rows"].get(name, 0),
            "share": None if a is None else round(a.share, 4), "rate_rps": None if a is None else round(a.rate_rps, 2),
            "turn_ms": None if a is None else round(a.latency_ms, 3),
        })
    return {
        "slice_id": desc["slice_id"], "cpus": desc["cpus"], "size": spec.size, "processes": desc["processes"],
        "pid": desc["worker"]["pid"], "alive": desc["worker"]["alive"], "restarts": desc["restarts"],
        "failing": desc["failing"], "models": models,
        "duty_cycle_ms": None if sp is None else sp.duty_cycle_ms,
        "planned_utilisation": None if sp is None else round(sp.utilisation, 4),
        "busy": None if busy is None else round(busy, 4),
    }
