"""The local-process executor: one worker process per slice on this host, pinned to the slice's
cores (CPU) or given its GPU share (MPS), speaking runtime.wire over a socketpair."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.runtime.executor import Arrays, BatchResult, ExitCallback, WorkerInfo, WorkerStatus
from modelplex.runtime.gpu import MpsDaemon, worker_env
from modelplex.runtime.worker_handle import WorkerHandle

log = logging.getLogger(__name__)


class LocalExecutor:
    """Worker processes on this host, one per slice."""

    def __init__(self, provider: str = "cpu", mps: MpsDaemon | None = None) -> None:
        self.provider = provider  # ONNX Runtime provider of CPU-device slices
        self.mps = mps  # the MPS daemon GPU slices attach to (None: no GPU shares)
        self._workers: dict[str, WorkerHandle] = {}

    async def start(
        self, slice_id: str, spec: SliceSpec, models: Mapping[str, ModelConfig], on_exit: ExitCallback
    ) -> WorkerInfo:
        gpu = spec.device_id.startswith("gpu")
        handle = WorkerHandle(
            slice_id,
            {name: config.path for name, config in models.items()},
            spec,
            provider="cuda" if gpu else self.provider,
            on_exit=lambda h, code: self._exited(slice_id, h, code, on_exit),
            env=worker_env(spec, self.mps),
        )
        info = await handle.start()
        old = self._workers.get(slice_id)
        self._workers[slice_id] = handle
        if old is not None and old is not handle:
            await old.stop()
        return WorkerInfo(info.pid, info.load_s, info.rss_mb)

    async def load(self, slice_id: str, model: ModelConfig) -> None:
        await self._worker(slice_id).load_model(model.model.name, model.path)

    async def unload(self, slice_id: str, model: str) -> None:
        await self._worker(slice_id).unload_model(model)

    async def run(self, slice_id: str, model: str, inputs: Arrays, outputs: Sequence[str] | None) -> BatchResult:
        result, compute_s = await self._worker(slice_id).run(inputs, outputs, model)
        return BatchResult(result, compute_s)

    async def stop(self, slice_id: str) -> None:
        handle = self._workers.pop(slice_id, None)
        if handle is not None:
            await handle.stop()

    def alive(self, slice_id: str) -> bool:
        handle = self._workers.get(slice_id)
        return handle is not None and handle.alive

    def status(self, slice_id: str) -> WorkerStatus:
        handle = self._workers.get(slice_id)
        if handle is None:
            return WorkerStatus(None, False, None)
        return WorkerStatus(handle.pid, handle.alive, _rss_mb(handle.pid) if handle.alive else None)

    def _worker(self, slice_id: str) -> WorkerHandle:
        handle = self._workers.get(slice_id)
        if handle is None or not handle.alive:
            raise UnavailableError(f"the worker of slice {slice_id} is not running")
        return handle

    def _exited(self, slice_id: str, handle: WorkerHandle, code: int | None, on_exit: ExitCallback) -> None:
        if self._workers.get(slice_id) is handle:
            log.warning("worker of slice %s exited (code %s)", slice_id, code)
            on_exit(slice_id, code)


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of a worker now (None when it is gone)."""
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
    except psutil.Error:
        return None
