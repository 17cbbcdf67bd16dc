"""The set of running slices: their runners, each model's router, the plan being served, and
changes to them -- a plan applied through the pure plan diff (start and load beside the running
slices, switch routing when ready, drain and stop the old ones), or a model started, scaled or
retired on slices of its own."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import Any

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError, ModelplexError, UnavailableError
from modelplex.core.plan import Plan
from modelplex.dispatch.router import Router
from modelplex.dispatch.scheduler import Lane, SliceScheduler, make_lane
from modelplex.planning.diff import diff
from modelplex.planning.frontend import kept_cores
from modelplex.planning.service import ServiceModel
from modelplex.runtime.clock import Clock
from modelplex.runtime.executor import Executor
from modelplex.runtime.slices import divide
from modelplex.serving.books import ModelBook, Pending
from modelplex.serving.slice_runner import SliceRunner

log = logging.getLogger(__name__)

# Batches a one-model CPU slice on cores of its own hands its worker at once: the one it runs and
# the next, queued behind it, so the worker never waits for the frontend between batches
# (benchmarks/README.md, "A batch queued behind the running one").
QUEUED_DEPTH = 2


@dataclass(frozen=True)
class PlanApplied:
    """What applying a plan did."""

    switch_s: float  # seconds from the call until routing switched to the new plan
    started: int  # slices started (new workers)
    kept: int  # running slices carried over unchanged
    drained: int  # slices taken out of service (they drain, then stop)

    @property
    def changes_workers(self) -> bool:
        return bool(self.started or self.drained)


class SliceSet:
    """Owns the running slices and the routes to them."""

    def __init__(
        self, executor: Executor, clock: Clock, cpus: Sequence[int], gpus: bool = False, service: ServiceModel | None = None,
        gpu_ids: Sequence[str] = (), frontend_cpus: Sequence[int] = (),
    ) -> None:
        self.executor = executor  # runs the workers
        self.clock = clock  # time source
        self.cpus = list(cpus)  # the host cores slices are cut from
        self.frontend_cpus = frozenset(frontend_cpus)  # cores the frontend keeps (none: it may run on any)
        self.frontend_own = self.frontend_cpus  # cores it has to itself now: kept, or left by the plan served
        self.gpus = gpus  # GPU shares may be planned (an MPS daemon runs)
        self.gpu_ids = tuple(gpu_ids) if gpus else ()  # the GPU devices plans may name ("gpu0", ...)
        self.service = service  # profiles for latency priors of planned slices (None: learn)
        self.runners: dict[str, SliceRunner] = {}  # slice id -> runner, in service
        self.routes: dict[str, Router[Pending]] = {}  # model -> its router
        self.plan: Plan | None = None  # the plan being served, when serving under one
        self._by_plan_id: dict[str, SliceRunner] = {}  # running plan's slice id -> runner
        self._all: dict[str, SliceRunner] = {}  # every runner not yet stopped, retiring ones too
        self._seq = 0
        self._plan_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()  # old slices draining

    # ---- lookups -------------------------------------------------------------------------
    def runner_of(self, scheduler: SliceScheduler[Pending]) -> SliceRunner:
        return self._all[scheduler.slice_id]

    def runners_of(self, model: str) -> list[SliceRunner]:
        route = self.routes.get(model)
        return [self._all[s.slice_id] for s in route.slices] if route is not None else []

    def model_ready(self, model: str) -> bool:
        return any(r.ready for r in self.runners_of(model))

    def model_running(self, model: str) -> bool:
        """Every slice routed to `model` runs (none starting, restarting or down)."""
        runners = self.runners_of(model)
        return bool(runners) and all(r.ready for r in runners)

    # ---- plans ---------------------------------------------------------------------------
    async def apply_plan(self, plan: Plan, books: dict[str, ModelBook], keeps_route: Callable[[str], bool]) -> PlanApplied:
        """Serve `plan` without losing a request; returns seconds until routing switched.
        Routes of models the plan does not place survive where `keeps_route(model)` says."""
        t0 = self.clock.now()
        async with self._plan_lock:
            self._check(plan, books)
            running = self._running_plan()
            d = diff(running, plan)
            tables = self.service.tables(plan) if self.service is not None else {}
            frontend = self.frontend_cpus or self.left_to_frontend(plan)
            fresh: dict[str, SliceRunner] = {}
            for start in d.start:
                spec = self._host_spec(start.slice)
                lanes = [
                    make_lane(a.model, a.batch, books[a.model].config.batching,
                              tables[(start.slice_id, a.model)].median_s if (start.slice_id, a.model) in tables else None)
                    for a in d.models_on(start.slice_id)
                ]
                models = [books[a.model] for a in d.models_on(start.slice_id)]
                fresh[start.slice_id] = self._runner(spec, models, lanes, start.duty_cycle_ms, start.processes, frontend)
            await self._start_all(list(fresh.values()), "plan not applied")
            # The switch: one synchronous step, so every request sees either the old or new routes.
            by_plan_id = dict(fresh)
            for keep in d.keep:
                by_plan_id[keep.slice_id] = self._by_plan_id[keep.running_id]
            routes = {m: r for m, r in self.routes.items() if keeps_route(m)}
            for route in d.route:
                routes[route.model] = Router(route.model, [(by_plan_id[sid].scheduler, w) for sid, w in route.targets])
            drained = self._switch(routes)
            self.plan, self._by_plan_id, self.frontend_own = plan, by_plan_id, frontend
            return PlanApplied(self.clock.now() - t0, len(fresh), len(d.keep), drained)

    def left_to_frontend(self, plan: Plan) -> frozenset[int]:
        """The host cores `plan` leaves to the frontend (no slice of it uses them)."""
        return frozenset(self.cpus[c] for cores in kept_cores(plan).values() for c in cores if c < len(self.cpus))

    def _running_plan(self) -> Plan | None:
        """The running plan, less slices whose worker is down (those start afresh)."""
        if self.plan is None:
            return None
        ready = tuple(s for s in self.plan.slices if s.slice_id in self._by_plan_id and self._by_plan_id[s.slice_id].ready)
        return dataclasses.replace(self.plan, slices=ready)

    def _check(self, plan: Plan, books: dict[str, ModelBook]) -> None:
        unknown = sorted({a.model for sp in plan.slices for a in sp.assignments} - set(books))
        if unknown:
            raise InvalidArgumentError(f"plan names model(s) this server does not have: {', '.join(unknown)}")
        for sp in plan.slices:
            if sp.slice.device_id.startswith("gpu") and not self.gpus:
                raise InvalidArgumentError(f"plan slice {sp.slice_id} is a GPU share; start the server with --gpus")
            if any(c >= len(self.cpus) or c < 0 for c in sp.slice.cpus):
                raise InvalidArgumentError(f"plan slice {sp.slice_id} uses cores {list(sp.slice.cpus)}, this server has {len(self.cpus)}")

    def _host_spec(self, spec: SliceSpec) -> SliceSpec:
        """The plan numbers cores 0..N-1 of its device; map them onto this server's cores."""
        if spec.device_id.startswith("gpu"):
            return spec
        cpus = tuple(self.cpus[c] for c in spec.cpus) or tuple(self.cpus)
        return SliceSpec(spec.device_id, len(cpus), cpus)

    def _switch(self, routes: dict[str, Router[Pending]]) -> int:
        in_use = {s.slice_id for route in routes.values() for s in route.slices}
        old = [r for sid, r in self.runners.items() if sid not in in_use]
        self.routes = routes
        self.runners = {sid: self._all[sid] for sid in in_use}
        for r in old:
            self._drain_away(r)
        return len(old)

    # ---- models on slices of their own ---------------------------------------------------
    async def start_model(self, book: ModelBook, specs: Sequence[SliceSpec], batch: int | None = None) -> None:
        """Serve a model on slices of its own (one instance each); raises when it cannot start."""
        runners = [self._runner(s, [book], [make_lane(book.config.model.name, batch, book.config.batching)]) for s in specs]
        await self._start_all(runners, "load failed")
        name = book.config.model.name
        for r in runners:
            self.runners[r.slice_id] = r
        self.routes[name] = Router(name, [(r.scheduler, 1.0 / len(runners)) for r in runners])

    async def scale(self, book: ModelBook, replicas: int, batch: int | None = None) -> None:
        """Serve a model on `replicas` slices of its own: add replicas, or retire some (they
        drain their queues first)."""
        name = book.config.model.name
        current = self.runners_of(name)
        if not current:
            await self.start_model(book, self.slices_for_new(replicas), batch)
            return
        if replicas > len(current):
            fresh = [self._runner(s, [book], [make_lane(name, batch, book.config.batching)]) for s in self.slices_for_new(replicas - len(current))]
            await self._start_all(fresh, "scale-up failed")
            for r in fresh:
                self.runners[r.slice_id] = r
            current += fresh
        kept = current[:replicas]
        self.routes[name] = Router(name, [(r.scheduler, 1.0 / len(kept)) for r in kept])
        for r in current[replicas:]:
            self._drain_away(r)
        if batch is not None:
            for r in kept:
                r.set_batch(name, batch)

    def retire(self, name: str) -> None:
        """Stop routing to a model; its slices serve what they hold, then stop."""
        for runner in self.runners_of(name):
            self._drain_away(runner)
        self.routes.pop(name, None)

    async def remove_model(self, name: str, reason: str) -> None:
        """Stop routing to a model at once and stop the slices that served only it."""
        runners = self.runners_of(name)
        self.routes.pop(name, None)
        for runner in runners:
            if all(m == name for m in runner.names):
                self.runners.pop(runner.slice_id, None)
                await runner.stop(reason)

    def replace_workers_on(self, device_ids: Sequence[str], why: str) -> int:
        """Replace the worker of every slice on these devices (all clients of a faulted MPS
        server must go); returns how many."""
        hit = [r for r in self._all.values() if r.slice.device_id in set(device_ids)]
        for r in hit:
            r.replace_worker(why)
        return len(hit)

    def slices_for_new(self, count: int) -> list[SliceSpec]:
        """Slices for a model loaded later: the least-used cores, one block per instance."""
        if not self.runners:
            return divide(self.cpus, count)
        usage: Tally[int] = Tally({c: 0 for c in self.cpus})
        for r in self.runners.values():
            usage.update(r.slice.cpus)
        order = sorted(self.cpus, key=lambda c: (usage[c], c))
        return [SliceSpec("cpu0", 1, (order[i % len(order)],)) for i in range(count)]

    async def stop(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*(r.stop("server shutting down") for r in self.runners.values()), return_exceptions=True)
        self.runners.clear()
        self.routes.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for _, r in sorted(self.runners.items())]

    # ---- internals -----------------------------------------------------------------------
    def _runner(
        self, spec: SliceSpec, books: list[ModelBook], lanes: list[Lane], duty_cycle_ms: float = 0.0, processes: int = 1,
        frontend: frozenset[int] | None = None,
    ) -> SliceRunner:
        """A runner for `spec`; it owns its cores when they are not among `frontend`'s, the cores
        left to the frontend (by default the server's; under a plan, those no slice uses). A
        slice of one model on cores of its own, one process, gets the next batch queued."""
        self._seq += 1
        slice_id = f"{spec.device_id}/s{self._seq}"
        frontend = self.frontend_cpus if frontend is None else frontend
        own = bool(frontend) and bool(spec.cpus) and not frontend & set(spec.cpus)
        depth = QUEUED_DEPTH if own and processes == 1 and len(lanes) == 1 else 1
        scheduler: SliceScheduler[Pending] = SliceScheduler(slice_id, lanes, duty_cycle_ms, processes, depth)
        runner = SliceRunner(slice_id, spec, books, scheduler, self.executor, self.clock, own_cores=own)
        self._all[slice_id] = runner
        return runner

    async def _start_all(self, runners: list[SliceRunner], why: str) -> None:
        results = await asyncio.gather(*(r.start() for r in runners), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(r.stop(why) for r in runners), return_exceptions=True)
            for r in runners:
                self._all.pop(r.slice_id, None)
            err = errors[0]
            raise err if isinstance(err, ModelplexError) else UnavailableError(f"{why}: {err}")

    def _drain_away(self, runner: SliceRunner) -> None:
        """Take a slice out of service: it serves what it has queued, then stops."""
        self.runners.pop(runner.slice_id, None)
        task = asyncio.ensure_future(runner.drain_and_stop())
        self._retiring.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._retiring.discard(t)
            self._all.pop(runner.slice_id, None)

        task.add_done_callback(done)
