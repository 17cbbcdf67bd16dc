"""The local-process executor: worker processes on this host, pinned to their slice's cores (CPU)
or given its GPU share (MPS), speaking runtime.wire over a socketpair. A slice runs one worker,
or several (a segment: MPS processes inside one share) that take batches concurrently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.runtime.executor import Arrays, BatchResult, ExitCallback, WorkerInfo, WorkerStatus
from modelplex.runtime.gpu import GpuShares, worker_env
from modelplex.runtime.worker_handle import STALL_TIMEOUT_S, WorkerHandle

log = logging.getLogger(__name__)


@dataclass
class _Slice:
    """The workers of one slice and how many batches each runs now."""

    workers: list[WorkerHandle]  # one per process of the slice
    busy: list[int] = field(default_factory=list)  # batches running on each

    def __post_init__(self) -> None:
        self.busy = [0] * len(self.workers)

    def least_busy(self) -> int:
        live = [i for i, w in enumerate(self.workers) if w.alive]
        if not live:
            raise UnavailableError("no worker of the slice is running")
        return min(live, key=lambda i: self.busy[i])


class LocalExecutor:
    """Worker processes on this host."""

    def __init__(self, provider: str = "cpu", gpus: GpuShares | None = None, stall_timeout_s: float = STALL_TIMEOUT_S) -> None:
        self.provider = provider  # ONNX Runtime provider of CPU-device slices
        self.gpus = gpus  # this host's GPU devices and how each is shared (None: no GPU slices)
        self.stall_timeout_s = stall_timeout_s  # a worker silent this long is killed (0: never)
        self._slices: dict[str, _Slice] = {}

    async def start(
        self, slice_id: str, spec: SliceSpec, models: Mapping[str, ModelConfig], on_exit: ExitCallback, processes: int = 1,
        poll_s: float = 0.0,
    ) -> WorkerInfo:
        gpu = spec.device_id.startswith("gpu")
        handles = [
            WorkerHandle(
                f"{slice_id}#{k}" if processes > 1 else slice_id,
                {name: config.path for name, config in models.items()},
                spec,
                provider="cuda" if gpu else self.provider,
                on_exit=lambda h, code: self._exited(slice_id, h, code, on_exit),
                env=worker_env(spec, self.gpus),
                stall_timeout_s=self.stall_timeout_s,
                poll_s=poll_s,
            )
            for k in range(max(1, processes))
        ]
        results = await asyncio.gather(*(h.start() for h in handles), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(h.stop() for h in handles), return_exceptions=True)
            raise errors[0]
        old = self._slices.get(slice_id)
        self._slices[slice_id] = _Slice(handles)
        if old is not None:
            await asyncio.gather(*(h.stop() for h in old.workers), return_exceptions=True)
        first = handles[0].info
        assert first is not None  # set by a successful start
        return WorkerInfo(first.pid, max(h.info.load_s for h in handles if h.info), sum(h.info.rss_mb for h in handles if h.info))

    async def load(self, slice_id: str, model: ModelConfig) -> None:
        for w in self._live(slice_id).workers:
            await w.load_model(model.model.name, model.path)

    async def unload(self, slice_id: str, model: str) -> None:
        for w in self._live(slice_id).workers:
            await w.unload_model(model)

    async def run(self, slice_id: str, model: str, inputs: Arrays, outputs: Sequence[str] | None) -> BatchResult:
        sl = self._slices.get(slice_id)
        if sl is not None and len(sl.workers) == 1:  # the common case: one process, no choice
            result, compute_s = await sl.workers[0].run(inputs, outputs, model)
            return BatchResult(result, compute_s)
        sl = self._live(slice_id)
        i = sl.least_busy()
        sl.busy[i] += 1
        try:
            result, compute_s = await sl.workers[i].run(inputs, outputs, model)
        finally:
            sl.busy[i] -= 1
        return BatchResult(result, compute_s)

    async def stop(self, slice_id: str, force: bool = False) -> None:
        sl = self._slices.pop(slice_id, None)
        if sl is not None:
            await asyncio.gather(*(h.stop(force) for h in sl.workers), return_exceptions=True)

    def alive(self, slice_id: str) -> bool:
        sl = self._slices.get(slice_id)
        return sl is not None and all(w.alive for w in sl.workers)

    def status(self, slice_id: str) -> WorkerStatus:
        sl = self._slices.get(slice_id)
        if sl is None:
            return WorkerStatus(None, False, None)
        rss = [_rss_mb(w.pid) if w.alive else None for w in sl.workers]
        known = [r for r in rss if r is not None]
        pids = tuple(w.pid for w in sl.workers if w.pid is not None)
        return WorkerStatus(sl.workers[0].pid, self.alive(slice_id), round(sum(known), 1) if known else None, pids)

    def _live(self, slice_id: str) -> _Slice:
        sl = self._slices.get(slice_id)
        if sl is None or not any(w.alive for w in sl.workers):
            raise UnavailableError(f"the worker of slice {slice_id} is not running")
        return sl

    def _exited(self, slice_id: str, handle: WorkerHandle, code: int | None, on_exit: ExitCallback) -> None:
        sl = self._slices.get(slice_id)
        if sl is not None and handle in sl.workers:
            log.warning("worker of slice %s exited (code %s)", handle.label, code)
            on_exit(slice_id, code)


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of a worker now (None when it is gone)."""
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
    except psutil.Error:
        return None
