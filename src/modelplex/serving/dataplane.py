"""The one data plane under both frontends: models, their queues and workers, metadata, stats."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter as Tally
from pathlib import Path
from typing import Any

from modelplex import __version__
from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError, ModelplexError, NotFoundError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.repository.config import to_triton_json
from modelplex.repository.store import ModelState, Registry, load_model_config, scan_repository
from modelplex.runtime.slices import divide
from modelplex.serving.served_model import ServedModel
from modelplex.serving.stats import Metrics
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
    """Serves the models of one repository on CPU slices of the given cores."""

    def __init__(self, repository: Path, cpus: list[int], registry: Registry | None = None, provider: str = "cpu") -> None:
        self.repository = repository
        self.cpus = cpus
        self.registry = registry
        self.provider = provider
        self.metrics = Metrics()
        self.models: dict[str, ServedModel] = {}  # name -> the served (latest) version
        self.failed: dict[str, str] = {}  # name -> why it could not be loaded
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Load every model of the repository; a model that fails is reported, not fatal."""
        configs, errors = scan_repository(self.repository)
        for name, reason in errors.items():
            self._mark_failed(name, reason)
        total = sum(max(1, c.instance_count) for c in configs)
        slices = divide(self.cpus, total)
        pos = 0
        starts = []
        for config in configs:
            n = max(1, config.instance_count)
            starts.append(self._start_model(config, slices[pos : pos + n]))
            pos += n
        await asyncio.gather(*starts)

    async def stop(self) -> None:
        await asyncio.gather(*(m.stop("server shutting down") for m in self.models.values()), return_exceptions=True)
        self.models.clear()

    async def load(self, name: str) -> None:
        """Load (or reload) a model from the repository."""
        async with self._lock(name):
            config = load_model_config(self.repository, name)
            old = self.models.pop(name, None)
            if old is not None:
                await old.stop("model reloaded")
            await self._start_model(config, self._slices_for_new(max(1, config.instance_count)))
            if name not in self.models:
                raise InvalidArgumentError(f"failed to load model {name}: {self.failed.get(name, 'unknown error')}")

    async def unload(self, name: str) -> None:
        async with self._lock(name):
            model = self.models.pop(name, None)
            if model is None:
                raise NotFoundError(f"model {name} is not loaded")
            await model.stop("model unloaded")
            if self.registry is not None:
                self.registry.set_state(name, model.config.model.version, ModelState.UNAVAILABLE, "unloaded")

    # ---- requests ------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            if name in self.failed:
                raise UnavailableError(f"model {name} is not available: {self.failed[name]}")
            raise NotFoundError(f"unknown model {name!r}")
        if version not in (None, "", model.config.model.version):
            raise NotFoundError(f"model {name} has no version {version!r} (served: {model.config.model.version})")
        return model

    async def infer(self, request: InferRequest) -> InferResponse:
        return await self.get(request.model, request.version).infer(request)

    # ---- metadata ------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        return {"name": "modelplex", "version": __version__, "extensions": EXTENSIONS}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        try:
            return self.get(name, version).ready
        except ModelplexError:
            return False

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
            served = self.models.get(c.model.name)
            state = "READY" if served is not None and served.ready else "UNAVAILABLE"
            entry: dict[str, Any] = {"name": c.model.name, "version": c.model.version, "state": state}
            if state != "READY":
                entry["reason"] = self.failed.get(c.model.name, "unloaded")
            out.append(entry)
        for name, reason in sorted(errors.items()):
            if name not in seen:
                out.append({"name": name, "version": "", "state": "UNAVAILABLE", "reason": reason})
        return out

    def statistics(self, name: str | None = None, version: str | None = None) -> dict[str, Any]:
        models = [self.get(name, version)] if name else list(self.models.values())
        return {"model_stats": [m.stats.to_json(m.name, m.config.model.version) for m in models]}

    def status(self) -> dict[str, Any]:
        """Frontend process, and per model its workers (pid, cores, memory) and queue."""
        import os

        import psutil

        rss_mb = psutil.Process(os.getpid()).memory_info().rss / 2**20
        return {
            "frontend": {"pid": os.getpid(), "rss_mb": round(rss_mb, 1), "cpus": self.cpus},
            "models": {name: m.describe() for name, m in sorted(self.models.items())},
            "failed": dict(self.failed),
        }

    # ---- internals -----------------------------------------------------------------------
    async def _start_model(self, config: ModelConfig, slices: list[SliceSpec]) -> None:
        name = config.model.name
        model = ServedModel(config, slices, self.metrics, self.provider)
        try:
            await model.start()
        except ModelplexError as exc:
            self._mark_failed(name, exc.message, config)
            return
        self.models[name] = model
        self.failed.pop(name, None)
        if self.registry is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.READY)

    def _mark_failed(self, name: str, reason: str, config: ModelConfig | None = None) -> None:
        self.failed[name] = reason
        print(f"modelplex: model {name} not loaded: {reason}", file=sys.stderr)
        if self.registry is not None and config is not None:
            self.registry.upsert(config.model, config.path, config, ModelState.UNAVAILABLE, reason)

    def _slices_for_new(self, count: int) -> list[SliceSpec]:
        """Slices for a model loaded later: the least-used cores, one block per instance."""
        usage: Tally[int] = Tally({c: 0 for c in self.cpus})
        for m in self.models.values():
            for s in m.slices:
                usage.update(s.cpus)
        if not self.models:
            return divide(self.cpus, count)
        order = sorted(self.cpus, key=lambda c: (usage[c], c))
        return [SliceSpec("cpu0", 1, (order[i % len(order)],)) for i in range(count)]

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _spec_json(spec: Any, config: ModelConfig) -> dict[str, Any]:
    shape = list(spec.shape)
    if config.batched:
        shape = [-1, *shape]
    return {"name": spec.name, "datatype": spec.datatype.value, "shape": shape}
