"""The one data plane under both frontends: models, their queues and workers, metadata, stats."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Any, Callable

from modelplex import __version__
from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeadlineError, InvalidArgumentError, ModelplexError, NotFoundError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.core.plan import Plan
from modelplex.repository.config import to_triton_json
from modelplex.repository.store import ModelState, Registry, load_model_config, scan_repository
from modelplex.runtime.gpu import MpsDaemon
from modelplex.runtime.slices import divide
from modelplex.serving.batching import QueuedRequest
from modelplex.serving.router import ModelRouter
from modelplex.serving.slice_runner import ModelBook, Pending, SliceRunner, deadline_of
from modelplex.serving.stats import Metrics, ModelStats
from modelplex.serving.validate import validate_request
from modelplex.serving.types import InferRequest, InferResponse

EXTENSIONS = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "schedule_policy",
    "model_configuration",
    "parameters",
]


class DataPlane:
    """Serves the models of one repository on slices of the given cores.

    Slices run workers (SliceRunner); each model's requests are split over its slices by a
    ModelRouter. Without a plan, every model instance gets a slice of its own."""

    def __init__(self, repository: Path, cpus: list[int], registry: Registry | None = None, provider: str = "cpu") -> None:
        self.repository = repository
        self.cpus = cpus
        self.registry = registry
        self.provider = provider
        self.metrics = Metrics()
        self.books: dict[str, ModelBook] = {}  # name -> the served (latest) version's config and stats
        self.slices: dict[str, SliceRunner] = {}  # slice id -> its runner
        self.routes: dict[str, ModelRouter] = {}  # name -> how its requests are split over slices
        self.failed: dict[str, str] = {}  # name -> why it could not be loaded
        self._locks: dict[str, asyncio.Lock] = {}
        self._slice_seq = 0
        self.plan: Plan | None = None  # the plan being served, when serving under one
        self.mps: MpsDaemon | None = None  # the MPS daemon, when plans cut GPUs into shares
        self._plan_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()  # old slices draining after a switch
        self.on_arrival: Callable[[str, float], None] | None = None  # rate observer (controller)
        self.modelless: Any = None  # ModelLess, when the registry has tasks and variants
        self.repository_names: set[str] = set()  # models of the repository (they win over variants)

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Load every model of the repository; a model that fails is reported, not fatal."""
        configs, errors = scan_repository(self.repository)
        for name, reason in errors.items():
            self._mark_failed(name, reason)
        self.repository_names = {c.model.name for c in configs} | set(errors)
        total = sum(max(1, c.instance_count) for c in configs)
        slices = divide(self.cpus, total)
        pos = 0
        starts = []
        for config in configs:
            n = max(1, config.instance_count)
            starts.append(self._start_model(config, slices[pos : pos + n]))
            pos += n
        await asyncio.gather(*starts)

    async def load_books(self) -> list[str]:
        """Read the repository's models (configs only; a plan decides where they run)."""
        configs, errors = scan_repository(self.repository)
        for name, reason in errors.items():
            self._mark_failed(name, reason)
        for config in configs:
            self.books[config.model.name] = ModelBook(config, ModelStats(), self.metrics)
        self.repository_names = {c.model.name for c in configs}
        return sorted(self.books)

    async def apply_plan(self, plan: Plan) -> float:
        """Serve `plan` without losing a request: start the workers of new slices beside the old
        ones, switch routing when all are ready, then let the old slices drain and stop.
        Slices identical to running ones are kept. Returns seconds until routing switched."""
        t0 = time.monotonic()
        async with self._plan_lock:
            by_signature = {_signature(r.slice.cpus, r.names, r.batch_sizes): r for r in self.slices.values()}
            fresh: list[SliceRunner] = []
            placed: dict[str, list[tuple[SliceRunner, float]]] = {}
            unknown = sorted({a.model for sp in plan.slices for a in sp.assignments} - set(self.books))
            if unknown:
                raise InvalidArgumentError(f"plan names model(s) this server does not have: {', '.join(unknown)}")
            for sp in plan.slices:
                gpu = sp.slice.device_id.startswith("gpu")
                if gpu and self.mps is None:
                    raise InvalidArgumentError(f"plan slice {sp.slice_id} is a GPU share; start the server with --gpus")
                if any(c >= len(self.cpus) or c < 0 for c in sp.slice.cpus):
                    raise InvalidArgumentError(
                        f"plan slice {sp.slice_id} uses cores {list(sp.slice.cpus)}, this server has {len(self.cpus)}"
                    )
                # the plan numbers cores 0..N-1 of its device; map them onto --cpus
                cpus = () if gpu else tuple(self.cpus[c] for c in sp.slice.cpus) or tuple(self.cpus)
                batches = {a.model: a.batch for a in sp.assignments if a.model in self.books}
                names = [a.model for a in sp.assignments if a.model in self.books]
                if not names:
                    continue
                runner = None if gpu else by_signature.pop(_signature(cpus, names, batches), None)
                if runner is None or not runner.ready:  # else: an identical running slice is kept
                    spec = sp.slice if gpu else SliceSpec(sp.slice.device_id, len(cpus), cpus)
                    runner = SliceRunner(
                        self._slice_id(spec), spec, [self.books[n] for n in names], batches, sp.duty_cycle_ms,
                        self.provider, self.mps,
                    )
                    fresh.append(runner)
                for a in sp.assignments:
                    if a.model in self.books:
                        placed.setdefault(a.model, []).append((runner, a.share))
            results = await asyncio.gather(*(r.start() for r in fresh), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                await asyncio.gather(*(r.stop("plan not applied") for r in fresh), return_exceptions=True)
                err = errors[0]
                raise err if isinstance(err, ModelplexError) else UnavailableError(f"cannot apply plan: {err}")
            # The switch: one synchronous step, so every request sees either the old or new routes.
            # Under a plan, a repository model the plan does not place is not served (its requests
            # get 503 naming the plan); on a server that had no plan yet, such models keep their
            # slices; variants loaded for model-less queries always keep theirs.
            routes = {
                m: r for m, r in self.routes.items() if self.plan is None or m not in self.repository_names
            }
            for model, entries in placed.items():
                routes[model] = ModelRouter(model, entries)
            new_slices = {r.slice_id: r for route in routes.values() for r in route.runners}
            old = [r for sid, r in self.slices.items() if sid not in new_slices]
            self.routes = routes
            self.slices = new_slices
            self.plan = plan
            switched_s = time.monotonic() - t0
            for r in old:
                self._drain_away(r)
            for model in placed:
                self.failed.pop(model, None)
        return switched_s

    def plan_status(self, now: float | None = None) -> dict[str, Any]:
        """The plan being served, each slice's utilisation, each model's recent SLO attainment."""
        now = time.monotonic() if now is None else now
        models: dict[str, Any] = {}
        for name, book in sorted(self.books.items()):
            ok, total = book.window.counts(now)
            models[name] = {
                "slo_ms": book.config.batching.slo_ms,
                "requests": total,
                "within_slo": ok,
                "slo_attainment": round(ok / total, 4) if total else None,
                "window_s": book.window.window_s,
            }
        return {
            "plan": self.plan.to_json() if self.plan is not None else None,
            "slices": [r.describe() for _, r in sorted(self.slices.items())],
            "models": models,
        }

    async def stop(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*(r.stop("server shutting down") for r in self.slices.values()), return_exceptions=True)
        self.slices.clear()
        self.routes.clear()

    async def load(self, name: str) -> None:
        """Load (or reload) a model from the repository."""
        async with self._lock(name):
            config = load_model_config(self.repository, name)
            if name in self.routes:
                await self._retire_model(name, "model reloaded")
            await self._start_model(config, self._slices_for_new(max(1, config.instance_count)))
            if name not in self.routes:
                raise InvalidArgumentError(f"failed to load model {name}: {self.failed.get(name, 'unknown error')}")

    async def scale_model(self, config: ModelConfig, replicas: int, batch: int | None = None) -> None:
        """Serve a model on `replicas` slices of its own at batches of at most `batch`: start it,
        or add or retire replicas (retired ones drain their queues first). Used for variants
        chosen at run time."""
        name = config.model.name
        async with self._lock(name):
            await self._scale(config, replicas)
            if batch is not None:
                for runner in self.routes[name].runners:
                    runner.set_batch(name, batch)

    async def retire(self, name: str) -> None:
        """Stop serving a model chosen at run time (its queued requests are served first)."""
        async with self._lock(name):
            route = self.routes.pop(name, None)
            for runner in route.runners if route is not None else []:
                self._drain_away(runner)

    def _drain_away(self, runner: SliceRunner) -> None:
        """Take a slice out of service: it serves what it has queued, then stops."""
        self.slices.pop(runner.slice_id, None)
        task = asyncio.ensure_future(runner.drain_and_stop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _scale(self, config: ModelConfig, replicas: int) -> None:
        name = config.model.name
        route = self.routes.get(name)
        if route is None:
            await self._start_model(config, self._slices_for_new(replicas))
            if name not in self.routes:
                raise UnavailableError(f"cannot load {name}: {self.failed.get(name, 'unknown error')}")
            return
        current = list(route.runners)
        if replicas > len(current):
            book = self.books[name]
            fresh = [SliceRunner(self._slice_id(s), s, [book], provider=self.provider)
                     for s in self._slices_for_new(replicas - len(current))]
            results = await asyncio.gather(*(r.start() for r in fresh), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                await asyncio.gather(*(r.stop("scale-up failed") for r in fresh), return_exceptions=True)
                raise UnavailableError(f"cannot add replicas of {name}: {errors[0]}")
            for r in fresh:
                self.slices[r.slice_id] = r
            current += fresh
        kept = current[:replicas]
        self.routes[name] = ModelRouter(name, [(r, 1.0 / len(kept)) for r in kept])
        for r in current[replicas:]:
            self._drain_away(r)

    async def unload(self, name: str) -> None:
        async with self._lock(name):
            if name not in self.routes:
                raise NotFoundError(f"model {name} is not loaded")
            version = self.books[name].config.model.version
            await self._retire_model(name, "model unloaded")
            if self.registry is not None:
                self.registry.set_state(name, version, ModelState.UNAVAILABLE, "unloaded")

    # ---- requests ------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ModelBook:
        book = self.books.get(name) if name in self.routes or self.plan is not None else None
        if book is None:
            if name in self.failed:
                raise UnavailableError(f"model {name} is not available: {self.failed[name]}")
            raise NotFoundError(f"unknown model {name!r}")
        if version not in (None, "", book.config.model.version):
            raise NotFoundError(f"model {name} has no version {version!r} (served: {book.config.model.version})")
        return book

    def knows(self, name: str) -> bool:
        """A name this server answers to: a repository model, or a registered model or variant."""
        return name in self.books or name in self.failed or (self.modelless is not None and self.modelless.serves(name))

    async def infer(self, request: InferRequest) -> InferResponse:
        """Entry point of every frontend: repository models directly, registered models and
        variants through model-less selection."""
        if (
            self.modelless is not None
            and request.model not in self.repository_names
            and self.modelless.serves(request.model)
        ):
            return await self.modelless.infer(request)  # type: ignore[no-any-return]
        return await self.run_request(request)

    async def infer_task(self, task: str, request: InferRequest) -> InferResponse:
        if self.modelless is None:
            raise NotFoundError(f"unknown task {task!r}: no tasks are registered (modelplex register)")
        return await self.modelless.infer(request, task=task)  # type: ignore[no-any-return]

    async def run_request(self, request: InferRequest) -> InferResponse:
        """Queue a request for a served model and wait for its answer."""
        book = self.get(request.model, request.version)
        rows = validate_request(book.config, request)
        now = time.monotonic()
        deadline = deadline_of(request, book.config.batching.slo_ms, now)
        future: asyncio.Future[InferResponse] = asyncio.get_running_loop().create_future()
        queued = QueuedRequest(now, deadline, rows, Pending(request, future, now))
        if self.on_arrival is not None:
            self.on_arrival(request.model, now)
        route = self.routes.get(request.model)
        if route is None:
            raise UnavailableError(f"model {request.model} is not placed by the current plan")
        admission = route.route(queued, now)
        if not admission.admitted:
            book.rejected(deadline=admission.deadline, now=now)
            message = f"model {request.model}: {admission.reason}"
            raise DeadlineError(message) if admission.deadline else UnavailableError(message)
        return await future

    # ---- metadata ------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelplex", "version": __version__, "extensions": EXTENSIONS}

    def ready(self) -> bool:
        return all(route.ready for route in self.routes.values())

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.get(name, version)
        except ModelplexError:
            return False
        route = self.routes.get(name)
        return route is not None and route.ready

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        config = self.get(name, version).config
        return {
            "name": name,
            "versions": [config.model.version],
            "platform": config.platform,
            "inputs": [_spec_json(s, config) for s in config.inputs],
            "outputs": [_spec_json(s, config) for s in config.outputs],
        }

    def model_config(self, name: str, version: str | None = None) -> dict[str, Any]:
        config = self.get(name, version).config
        out = to_triton_json(config)
        if config.batching.slo_ms is not None:
            out["parameters"] = {"slo_ms": {"string_value": str(config.batching.slo_ms)}}
        return out

    def repository_index(self) -> list[dict[str, Any]]:
        configs, errors = scan_repository(self.repository)
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for c in configs:
            seen.add(c.model.name)
            route = self.routes.get(c.model.name)
            state = "READY" if route is not None and route.ready else "UNAVAILABLE"
            entry: dict[str, Any] = {"name": c.model.name, "version": c.model.version, "state": state}
            if state != "READY":
                fallback = "not placed by the current plan" if self.plan is not None and route is None else "unloaded"
                entry["reason"] = self.failed.get(c.model.name, fallback)
            out.append(entry)
        for name, reason in sorted(errors.items()):
            if name not in seen:
                out.append({"name": name, "version": "", "state": "UNAVAILABLE", "reason": reason})
        return out

    def statistics(self, name: str | None = None, version: str | None = None) -> dict[str, Any]:
        books = [self.get(name, version)] if name else [self.books[n] for n in sorted(self.routes)]
        return {"model_stats": [b.stats.to_json(b.config.model.name, b.config.model.version) for b in books]}

    def status(self) -> dict[str, Any]:
        """Frontend process, every slice (worker pid, cores, memory, queues), each model's slices."""
        import psutil

        rss_mb = psutil.Process(os.getpid()).memory_info().rss / 2**20
        return {
            "frontend": {"pid": os.getpid(), "rss_mb": round(rss_mb, 1), "cpus": self.cpus},
            "slices": [r.describe() for _, r in sorted(self.slices.items())],
            "models": {
                name: {"slices": [r.slice_id for r in route.runners], "shares": route.weights, "ready": route.ready}
                for name, route in sorted(self.routes.items())
            },
            "failed": dict(self.failed),
        }

    # ---- internals -----------------------------------------------------------------------
    async def _start_model(self, config: ModelConfig, slices: list[SliceSpec]) -> None:
        """Start a model on slices of its own (one instance each) and route to them."""
        name = config.model.name
        book = ModelBook(config, ModelStats(), self.metrics)
        runners = [SliceRunner(self._slice_id(s), s, [book], provider=self.provider) for s in slices]
        results = await asyncio.gather(*(r.start() for r in runners), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(r.stop("load failed") for r in runners), return_exceptions=True)
            err = errors[0]
            self._mark_failed(name, err.message if isinstance(err, ModelplexError) else str(err), config)
            return
        self.books[name] = book
        for r in runners:
            self.slices[r.slice_id] = r
        self.routes[name] = ModelRouter(name, [(r, 1.0 / len(runners)) for r in runners])
        self.failed.pop(name, None)
        if self.registry is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.READY)

    async def _retire_model(self, name: str, reason: str) -> None:
        """Stop routing to a model and stop the slices that served only it."""
        route = self.routes.pop(name)
        for runner in route.runners:
            if all(m == name for m in runner.names):
                self.slices.pop(runner.slice_id, None)
                await runner.stop(reason)

    def _slice_id(self, spec: SliceSpec) -> str:
        self._slice_seq += 1
        return f"{spec.device_id}/s{self._slice_seq}"

    def _mark_failed(self, name: str, reason: str, config: ModelConfig | None = None) -> None:
        self.failed[name] = reason
        print(f"modelplex: model {name} not loaded: {reason}", file=sys.stderr)
        if self.registry is not None and config is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.UNAVAILABLE, reason)

    def _slices_for_new(self, count: int) -> list[SliceSpec]:
        """Slices for a model loaded later: the least-used cores, one block per instance."""
        if not self.slices:
            return divide(self.cpus, count)
        usage: Tally[int] = Tally({c: 0 for c in self.cpus})
        for r in self.slices.values():
            usage.update(r.slice.cpus)
        order = sorted(self.cpus, key=lambda c: (usage[c], c))
        return [SliceSpec("cpu0", 1, (order[i % len(order)],)) for i in range(count)]

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _signature(cpus: tuple[int, ...], names: list[str], batches: dict[str, int]) -> tuple[object, ...]:
    """What makes two slices interchangeable: the same cores, models and batch sizes."""
    return (tuple(cpus), tuple(sorted((n, batches.get(n, 0)) for n in names)))


def _spec_json(spec: Any, config: ModelConfig) -> dict[str, Any]:
    shape = list(spec.shape)
    if config.batched:
        shape = [-1, *shape]
    return {"name": spec.name, "datatype": spec.datatype.value, "shape": shape}
