"""The one data plane under both frontends: models, their queues and workers, metadata, stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelplex import __version__
from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError, ModelplexError, NotFoundError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.core.plan import Plan
from modelplex.planning.admit import HostShape
from modelplex.repository.folders import load_model_config, scan_repository
from modelplex.repository.store import UNLOADED, ModelState, Registry
from modelplex.runtime.slices import divide
from modelplex.serving.books import ModelBook
from modelplex.serving.limits import ClientLink, Limits
from modelplex.serving.requests import ArrivalObserver, RequestPath
from modelplex.serving.messages import ModelMetadata, ModelStatistics, RepositoryEntry, ServerMetadata, metadata_of
from modelplex.serving.slice_set import PlanApplied, SliceSet
from modelplex.serving.stats import Metrics, ModelStats
from modelplex.serving.timeline import DecisionLog
from modelplex.serving.shm import SharedMemoryRegions
from modelplex.serving.types import InferRequest, InferResponse

if TYPE_CHECKING:
    from modelplex.serving.modelless import ModelLess

log = logging.getLogger(__name__)

EXTENSIONS = [
    "binary_tensor_data",
    "model_repository",
    "statistics",
    "schedule_policy",
    "model_configuration",
    "parameters",
    "system_shared_memory",
]


class DataPlane:
    """Answers requests for the models of one repository, on the slices a SliceSet runs.

    Without a plan, every model instance gets a slice of its own; under a plan (apply_plan),
    the plan decides. Model-less queries go to `modelless` when the registry has variants."""

    def __init__(
        self, repository: Path, slices: SliceSet, registry: Registry | None = None,
        arrivals: ArrivalObserver | None = None, limits: Limits = Limits(),
        gpu_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.repository = repository  # model repository folder
        self.slices = slices  # the running slices and routes
        self.clock = slices.clock  # time source
        self.cpus = slices.cpus  # cores of this server
        self.registry = registry  # registered models, tasks and variants (None: no persistence)
        self.arrivals = arrivals  # told of every arrival (the re-planning controller), if any
        self.requests = RequestPath(slices, limits, arrivals)  # admission, queueing, answers by the deadline
        self.metrics = Metrics()
        self.books: dict[str, ModelBook] = {}  # name -> the served (latest) version's config and stats
        self.failed: dict[str, str] = {}  # name -> why it could not be loaded
        self.unloaded: set[str] = set()  # repository models unloaded over the API (kept so across restarts)
        self._loading = 0  # loads and plan changes in progress (the server is not ready meanwhile)
        self._locks: dict[str, asyncio.Lock] = {}
        self.repository_names: set[str] = set()  # models of the repository (they win over variants)
        self.modelless = self._modelless()  # model-less serving, when the registry has variants
        self.shm = SharedMemoryRegions()  # registered system shared-memory regions
        self.decisions = DecisionLog()  # plans applied (by the planner or posted), for the dashboard
        self.gpu_status = gpu_status  # the GPU sharing probe, for status (--gpus; None: no GPUs)

    def _modelless(self) -> "ModelLess | None":
        if self.registry is None:
            return None
        from modelplex.repository.registry_variants import list_variants
        from modelplex.serving.modelless import ModelLess

        return ModelLess(self.slices, self.run_request, self.book_for, self.registry) if list_variants(self.registry) else None

    @property
    def plan(self) -> Plan | None:
        return self.slices.plan

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Load every repository model not unloaded over the API before; failures are reported."""
        async with self._busy():
            configs, errors = scan_repository(self.repository)
            for name, reason in errors.items():
                self._mark_failed(name, reason)
            self.repository_names = {c.model.name for c in configs} | set(errors)
            configs = self._skip_unloaded(configs)
            specs = divide(self.cpus, sum(max(1, c.instance_count) for c in configs))
            pos = 0
            starts = []
            for config in configs:
                n = max(1, config.instance_count)
                starts.append(self._start_model(config, specs[pos : pos + n]))
                pos += n
            await asyncio.gather(*starts)

    async def load_books(self) -> list[str]:
        """Read the repository's models (configs only; a plan decides where they run)."""
        configs, errors = scan_repository(self.repository)
        for name, reason in errors.items():
            self._mark_failed(name, reason)
        self.repository_names = {c.model.name for c in configs}
        for config in self._skip_unloaded(configs):
            self.books[config.model.name] = ModelBook(config, ModelStats(), self.metrics)
        return sorted(self.books)

    async def apply_plan(self, plan: Plan) -> PlanApplied:
        """Serve `plan` without losing a request (see SliceSet.apply_plan). Under a plan, a
        repository model the plan does not place is not served (503 naming the plan); on a
        server that had no plan yet, such models keep their slices; variants loaded for
        model-less queries always keep theirs."""
        had_plan = self.slices.plan is not None
        async with self._busy():
            applied = await self.slices.apply_plan(
                plan, self.books, lambda m: not had_plan or m not in self.repository_names
            )
        for sp in plan.slices:
            for a in sp.assignments:
                self.failed.pop(a.model, None)
        return applied

    def host_shape(self) -> HostShape:
        """What a posted plan may use here: the cores, the GPUs, the models and their batch bounds."""
        batches = {name: book.config.batching.max_batch_size for name, book in self.books.items()}
        return HostShape(len(self.cpus), self.slices.gpu_ids, batches)

    def plan_status(self, now: float | None = None) -> dict[str, Any]:
        """The plan being served, each slice's utilisation, each model's recent SLO attainment."""
        now = self.clock.now() if now is None else now
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
        plan = self.slices.plan
        return {"plan": plan.to_json() if plan is not None else None, "slices": self.slices.describe(), "models": models,
                "gpus": self.gpu_status() if self.gpu_status is not None else None}

    async def stop(self) -> None:
        if self.modelless is not None:
            await self.modelless.stop()
        await self.slices.stop()
        self.shm.close()

    async def load(self, name: str) -> None:
        """Load (or reload) a model from the repository; it is no longer kept unloaded."""
        async with self._lock(name), self._busy():
            config = load_model_config(self.repository, name)
            if name in self.slices.routes:
                await self.slices.remove_model(name, "model reloaded")
            await self._start_model(config, self.slices.slices_for_new(max(1, config.instance_count)))
            if name not in self.slices.routes:
                raise InvalidArgumentError(f"failed to load model {name}: {self.failed.get(name, 'unknown error')}")

    def book_for(self, config: ModelConfig) -> ModelBook:
        """The book of a model chosen at run time (a variant), made on first use."""
        name = config.model.name
        book = self.books.get(name)
        if book is None or book.config != config:
            book = self.books[name] = ModelBook(config, ModelStats(), self.metrics)
        return book

    async def unload(self, name: str) -> None:
        async with self._lock(name):
            if name not in self.slices.routes:
                raise NotFoundError(f"model {name} is not loaded")
            version = self.books[name].config.model.version
            await self.slices.remove_model(name, "model unloaded")
            if name in self.repository_names:  # variants are the autoscaler's to load and unload
                self.unloaded.add(name)
                if self.registry is not None:  # a restart keeps it unloaded (see start)
                    self.registry.set_state(name, version, ModelState.UNAVAILABLE, UNLOADED)

    # ---- requests ------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ModelBook:
        book = self.books.get(name) if name in self.slices.routes or self.slices.plan is not None else None
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

    async def infer(self, request: InferRequest, client: ClientLink | None = None) -> InferResponse:
        """Entry point of every frontend: repository models directly, registered models and
        variants through model-less selection. `client` tells when the client leaves. Inputs
        and outputs in shared memory are read and written here, for every frontend."""
        self.shm.read_inputs(request)
        if (
            self.modelless is not None
            and request.model not in self.repository_names
            and self.modelless.serves(request.model)
        ):
            response = await self.modelless.infer(request)
        else:
            response = await self.run_request(request, client)
        self.shm.write_outputs(request, response)
        return response

    async def infer_task(self, task: str, request: InferRequest) -> InferResponse:
        if self.modelless is None:
            raise NotFoundError(f"unknown task {task!r}: no tasks are registered (modelplex register)")
        self.shm.read_inputs(request)
        response = await self.modelless.infer(request, task=task)
        self.shm.write_outputs(request, response)
        return response

    def refuse_early(self, model: str, json_part: bytes | memoryview) -> None:
        """Refuse a request of a busy repository model before decoding it, when its deadline is
        its model's (no `timeout` in its JSON) and no slice could meet it even for one row:
        under a flood of retries, a refusal then costs little more than the HTTP exchange."""
        book = self.books.get(model)
        if book is None or (self.modelless is not None and model not in self.repository_names):
            return  # unknown here, or a variant or registered model: model-less selection decides
        if not self.requests.too_busy(book):
            return  # the common case: answered without looking at the body
        if b'"timeout"' in json_part or b'"priority"' in json_part:
            return  # its own deadline, or a level that may put it ahead of the queue
        self.requests.refuse_busy(book)

    async def run_request(self, request: InferRequest, client: ClientLink | None = None) -> InferResponse:
        """Queue a request for a served model and wait for its answer (see RequestPath.run)."""
        return await self.requests.run(self.get(request.model, request.version), request, client)

    # ---- metadata ------------------------------------------------------------------------
    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata("modelplex", __version__, tuple(EXTENSIONS))

    def ready(self) -> bool:
        """Some model placed, all placed models' slices running, no load, plan change or preload on."""
        busy = self._loading or (self.modelless is not None and self.modelless.preloading)
        return not busy and bool(self.slices.routes) and all(self.slices.model_running(m) for m in self.slices.routes)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self.get(name, version)
        except ModelplexError:
            return False
        return self.slices.model_ready(name)

    def model_metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        return metadata_of(self.get(name, version).config)

    def model_config(self, name: str, version: str | None = None) -> ModelConfig:
        return self.get(name, version).config

    def repository_index(self) -> list[RepositoryEntry]:
        configs, errors = scan_repository(self.repository)
        seen: set[str] = set()
        out: list[RepositoryEntry] = []
        for c in configs:
            name = c.model.name
            seen.add(name)
            placed = name in self.slices.routes
            if placed and self.slices.model_ready(name):
                out.append(RepositoryEntry(name, c.model.version, "READY"))
                continue
            fallback = "not placed by the current plan" if self.plan is not None and not placed else UNLOADED
            reason = self.failed.get(name) or (UNLOADED if name in self.unloaded else fallback)
            out.append(RepositoryEntry(name, c.model.version, "UNAVAILABLE", reason))
        out.extend(RepositoryEntry(n, "", "UNAVAILABLE", reason) for n, reason in sorted(errors.items()) if n not in seen)
        return out

    def statistics(self, name: str | None = None, version: str | None = None) -> list[ModelStatistics]:
        books = [self.get(name, version)] if name else [self.books[n] for n in sorted(self.slices.routes) if n in self.books]
        return [ModelStatistics(b.config.model.name, b.config.model.version, b.stats) for b in books]

    def status(self) -> dict[str, Any]:
        """Frontend process, every slice (worker pid, cores, memory, queues), each model's slices."""
        import psutil

        rss_mb = psutil.Process(os.getpid()).memory_info().rss / 2**20
        return {
            "frontend": {"pid": os.getpid(), "rss_mb": round(rss_mb, 1), "cpus": self.cpus},
            "slices": self.slices.describe(),
            "models": {
                name: {"slices": [s.slice_id for s in route.slices], "shares": route.weights,
                       "ready": self.slices.model_ready(name)}
                for name, route in sorted(self.slices.routes.items())
            },
            "failed": dict(self.failed),
            "gpus": self.gpu_status() if self.gpu_status is not None else None,
        }

    # ---- internals -----------------------------------------------------------------------
    async def _start_model(self, config: ModelConfig, specs: list[SliceSpec]) -> None:
        """Start a model on slices of its own (one instance each) and route to them."""
        name = config.model.name
        book = ModelBook(config, ModelStats(), self.metrics)
        try:
            await self.slices.start_model(book, specs)
        except ModelplexError as exc:
            self._mark_failed(name, exc.message, config)
            return
        self.books[name] = book
        self.failed.pop(name, None)
        self.unloaded.discard(name)
        if self.registry is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.READY)

    def _mark_failed(self, name: str, reason: str, config: ModelConfig | None = None) -> None:
        self.failed[name] = reason
        log.warning("model %s not loaded: %s", name, reason)
        if self.registry is not None and config is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.UNAVAILABLE, reason)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _busy(self) -> AsyncIterator[None]:
        """A load or plan change in progress: not ready until it ends."""
        self._loading += 1
        try:
            yield
        finally:
            self._loading -= 1

    def _skip_unloaded(self, configs: list[ModelConfig]) -> list[ModelConfig]:
        """`configs` less the models unloaded over the API before (the registry remembers)."""
        if self.registry is not None:
            self.unloaded |= self.registry.unloaded(c.model for c in configs)
        if self.unloaded:
            log.info("not loading %s: unloaded over the API (a load call brings it back)", ", ".join(sorted(self.unloaded)))
        return [c for c in configs if c.model.name not in self.unloaded]
