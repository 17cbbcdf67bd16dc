"""Model-less serving at run time: registered tasks and variants (from the registry) served by
the data plane, chosen per request by the pure selection policy, loaded on first use, and scaled
by the pure autoscaler. The three query forms:

  (a) POST /v2/models/{variant}/infer            a named variant, e.g. `digits_mlp32:int8-static`
  (b) POST /v2/models/{model}/infer              a registered model without a variant, plus a
      parameters.latency_ms (or timeout µs)      latency target: the system picks the variant
  (c) POST /v2/tasks/{task}/infer                model-less: parameters.latency_ms and
      parameters.min_accuracy                    min_accuracy (gRPC: parameters task=..., ...)

The response names the model and variant that served it (model_name, model_version,
parameters.variant)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelplex.control.autoscale import (
    AutoscaleConfig,
    AutoscaleState,
    Decision,
    Deployment,
    Observation,
    Option,
    replica_capacity,
)
from modelplex.control.autoscale import step as autoscale_step
from modelplex.control.rates import RateEstimator
from modelplex.core.errors import InvalidArgumentError, ModelplexError, NotFoundError
from modelplex.core.model import ModelConfig, ModelId
from modelplex.planning.selection import Candidate, Query, select
from modelplex.repository.config import ServingOverrides, build_model_config, inspect_onnx
from modelplex.repository.registry_variants import list_variants
from modelplex.repository.store import Registry
from modelplex.repository.variants import Variant
from modelplex.dispatch.deadlines import timeout_s
from modelplex.serving.books import ModelBook
from modelplex.serving.slice_set import SliceSet
from modelplex.serving.types import InferRequest, InferResponse

log = logging.getLogger(__name__)
RunRequest = Callable[[InferRequest], Awaitable[InferResponse]]

DEFAULT_LATENCY_MS = 1000.0  # target of a query that gives none (forms b and c)


@dataclass
class _Demand:
    """What the requests routed to one variant asked for, over the current window."""

    slo_ms: float = math.inf  # strictest latency target seen
    min_accuracy: float | None = None  # highest accuracy floor seen


def _number(key: str, value: Any) -> float | None:
    """A numeric parameter; numeric strings too (some gRPC clients send only int and string)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"parameter {key!r} must be a number, got {value!r}")
    return float(value)


def query_of(request: InferRequest, task: str | None) -> Query:
    """The selection query a request carries (form b when `task` is None, else form c)."""
    p = request.parameters
    latency = p.get("latency_ms")
    own_s = timeout_s(p)
    if latency is None and own_s is not None:
        latency = own_s * 1000.0
    floor = p.get("min_accuracy")
    latency, floor = _number("latency_ms", latency), _number("min_accuracy", floor)
    latency_ms = float(latency) if latency is not None else DEFAULT_LATENCY_MS
    min_accuracy = float(floor) if floor is not None else None
    if task is not None:
        return Query(task=task, latency_ms=latency_ms, min_accuracy=min_accuracy)
    return Query(model=request.model, latency_ms=latency_ms, min_accuracy=min_accuracy)


@dataclass
class ModelLess:
    """Tasks and variants of the registry, served through the data plane."""

    slices: SliceSet  # where variants run
    run_request: RunRequest  # queues a request for a loaded variant and awaits the answer
    book_for: Callable[[ModelConfig], ModelBook]  # statistics book of a variant, made on first use
    registry: Registry  # where tasks and variants are registered
    autoscale: AutoscaleConfig = field(default_factory=AutoscaleConfig)  # scaling thresholds
    interval_s: float = 0.5  # how often the autoscaler looks
    variants: dict[str, Variant] = field(default_factory=dict, init=False)  # servable variants by name
    deployments: dict[str, Deployment] = field(default_factory=dict, init=False)  # variant -> what runs
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50), init=False)  # recent, for status
    _rates: RateEstimator = field(default_factory=RateEstimator, init=False)
    _demand: dict[str, _Demand] = field(default_factory=dict, init=False)
    _state: AutoscaleState = field(default_factory=AutoscaleState, init=False)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    preloading: bool = field(default=False, init=False)  # variants still loading at start (not ready yet)

    def __post_init__(self) -> None:
        self.reload()
        if self.autoscale.max_replicas > len(self.slices.cpus):
            # more 1-core replicas than cores would only share cores: no capacity gained
            self.autoscale = replace(self.autoscale, max_replicas=max(1, len(self.slices.cpus)))

    def reload(self) -> None:
        """Read the registry's variants again (after `modelplex register`)."""
        self.variants = {
            v.name: v
            for v in list_variants(self.registry)
            if v.device_kind == "cpu" and v.profile is not None and v.profile.points
        }

    @property
    def tasks(self) -> set[str]:
        return {v.task for v in self.variants.values()}

    @property
    def models(self) -> set[str]:
        return {v.model for v in self.variants.values()}

    def serves(self, name: str) -> bool:
        return name in self.variants or name in self.models

    # ---- requests ------------------------------------------------------------------------
    async def infer(self, request: InferRequest, task: str | None = None) -> InferResponse:
        if task is not None and task not in self.tasks:
            raise NotFoundError(f"unknown task {task!r} (registered: {', '.join(sorted(self.tasks)) or 'none'})")
        if task is None and request.model in self.variants:
            query = Query(variant=request.model)
        else:
            query = query_of(request, task)
        chosen = select(query, self.candidates()).candidate.variant
        variant = self.variants[chosen]
        now = time.monotonic()
        self._rates.observe(chosen, now)
        d = self._demand.setdefault(chosen, _Demand())
        if query.latency_ms is not None:
            d.slo_ms = min(d.slo_ms, query.latency_ms)
        if query.min_accuracy is not None:
            d.min_accuracy = max(d.min_accuracy or 0.0, query.min_accuracy)
        await self.ensure_loaded(chosen, slo_ms=query.latency_ms)
        params = dict(request.parameters)
        if query.latency_ms is not None and "timeout" not in params:
            params["timeout"] = query.latency_ms * 1000.0  # the target is the request's deadline
        params.pop("latency_ms", None)
        params.pop("min_accuracy", None)
        params.pop("task", None)
        inner = InferRequest(chosen, None, request.inputs, request.outputs, request.id, params)
        response = await self.run_request(inner)
        response.model = variant.model
        response.version = "1"
        response.parameters = {**response.parameters, "variant": chosen, "task": variant.task,
                               "precision": variant.precision.value}
        if variant.accuracy is not None:
            response.parameters["accuracy"] = round(variant.accuracy, 4)
        return response

    def candidates(self) -> list[Candidate]:
        out: list[Candidate] = []
        for v in self.variants.values():
            assert v.profile is not None
            dep = self.deployments.get(v.name)
            runners = self.slices.runners_of(v.name)
            loaded = dep is not None and any(r.ready for r in runners)
            util, queued = 0.0, 0
            if loaded:
                util = sum(r.recent_utilisation() for r in runners) / max(1, len(runners))
                queued = sum(r.scheduler.queued_rows(v.name) for r in runners) // max(1, len(runners))
            out.append(
                Candidate(
                    variant=v.name, model=v.model, task=v.task, accuracy=v.accuracy, profile=v.profile,
                    slice_size=dep.slice_size if dep else 1, batch=1, loaded=loaded,
                    utilisation=util, queued=queued, load_s=v.load_s or 0.5,
                )
            )
        return out

    # ---- deployments ---------------------------------------------------------------------
    async def ensure_loaded(self, name: str, slo_ms: float | None = None) -> None:
        """Load one replica of a variant, at the batch its latency target allows."""
        if name in self.deployments and name in self.slices.routes:
            return
        async with self._lock(name):
            if name in self.deployments and name in self.slices.routes:
                return
            v = self.variants[name]
            assert v.profile is not None
            batch, _ = replica_capacity(v.profile, 1, max(1, v.max_batch), slo_ms or DEFAULT_LATENCY_MS)
            await self.slices.scale(self.book_for(self._config(v)), 1, max(1, batch))
            self.deployments[name] = Deployment(name, 1, max(1, batch), 1)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _config(self, v: Variant) -> ModelConfig:
        path = Path(v.path)
        return build_model_config(
            ModelId(v.name, "1"), path, inspect_onnx(path), None,
            ServingOverrides(max_batch_size=v.max_batch, task=v.task),
        )

    async def apply(self, decision: Decision) -> None:
        """Carry out an autoscaling decision: resize, or load the target and retire the current."""
        cur, target = decision.current, decision.target
        async with self._lock(target.variant):
            await self.slices.scale(self.book_for(self._config(self.variants[target.variant])), target.replicas, target.batch)
        self.deployments[target.variant] = target
        if target.variant != cur.variant:
            # the target meets the accuracy floor of every request the current one served
            # (the autoscaler never goes below it), so the current one can go; a later query
            # that needs it again loads it again, its load time counted by selection
            self.deployments.pop(cur.variant, None)
            self.slices.retire(cur.variant)

    # ---- the autoscaling loop ------------------------------------------------------------
    def start(self, preload: bool = True) -> None:
        """Start the autoscaler; with `preload`, load one replica of every variant in the
        background so that first queries do not pay the load time (selection counts it)."""
        self.preloading = preload
        self._task = asyncio.ensure_future(self._loop(preload))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def step(self, now: float) -> list[Decision]:
        """One autoscaling step over every task; applies and logs the decisions."""
        rates = self._rates.rates(now)
        applied: list[Decision] = []
        for task in sorted(self.tasks):
            options = [
                Option(v.name, v.accuracy, v.profile, (1,), max(1, v.max_batch), v.load_s or 0.0)
                for v in self.variants.values() if v.task == task and v.profile is not None
            ]
            observations = []
            for name, dep in self.deployments.items():
                v = self.variants.get(name)
                if v is None or v.task != task:
                    continue
                d = self._demand.get(name, _Demand())
                slo = d.slo_ms if math.isfinite(d.slo_ms) else DEFAULT_LATENCY_MS
                observations.append(Observation(dep, rates.get(name, 0.0), slo, d.min_accuracy))
            self._state, decisions = autoscale_step(self._state, now, task, observations, options, self.autoscale)
            for decision in decisions:
                self.decisions.append({"at_s": round(now, 3), "action": decision.action.value, "reason": decision.reason})
                log.info("autoscale: %s", decision.reason)
                try:
                    await self.apply(decision)
                    applied.append(decision)
                except ModelplexError as exc:
                    log.warning("autoscale could not apply: %s", exc)
        return applied

    async def _loop(self, preload: bool) -> None:
        if preload:
            try:
                for name in sorted(self.variants):
                    try:
                        await self.ensure_loaded(name)
                    except ModelplexError as exc:
                        log.warning("cannot preload variant %s: %s", name, exc.message)
            finally:
                self.preloading = False
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.step(time.monotonic())
            except Exception as exc:  # never let the loop die
                log.error("autoscale step failed: %r", exc)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        rates = self._rates.rates(now)
        return {
            "tasks": sorted(self.tasks),
            "variants": {
                name: {
                    "model": v.model, "task": v.task, "precision": v.precision.value,
                    "accuracy": v.accuracy, "accuracy_kind": v.accuracy_kind,
                    "deployment": self.deployments[name].label if name in self.deployments else None,
                    "rate_rps": round(rates.get(name, 0.0), 2),
                }
                for name, v in sorted(self.variants.items())
            },
            "decisions": list(self.decisions),
        }


