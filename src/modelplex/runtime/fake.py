"""An in-package fake executor: no processes, deterministic latencies, time from a Clock. Tests
and parity runs against the simulator use it; outputs are zeros of each output's shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import UnavailableError, WorkerLostError
from modelplex.core.model import ModelConfig
from modelplex.runtime.clock import Clock
from modelplex.runtime.executor import Arrays, BatchResult, ExitCallback, WorkerInfo, WorkerStatus

LatencyFn = Callable[[SliceSpec, str, int], float]  # (slice, model, rows) -> seconds
StartFn = Callable[[SliceSpec, Sequence[str]], float]  # (slice, models) -> seconds to start


@dataclass(frozen=True)
class FakeBatch:
    """One batch the fake ran, for tests to inspect."""

    slice_id: str  # where it ran
    spec: SliceSpec  # the slice's share
    model: str  # model run
    inputs: Arrays  # what it was given
    started_s: float  # clock time it started
    finished_s: float  # clock time it finished


@dataclass
class _FakeWorker:
    spec: SliceSpec  # the slice
    models: dict[str, ModelConfig]  # loaded models
    on_exit: ExitCallback  # reported by `crash`
    free_s: list[float]  # per process: when it is through the batches it holds (one at a time, like a real one)
    alive: bool = True  # False once stopped or crashed


@dataclass
class FakeExecutor:
    """Runs batches by sleeping `latency_s(spec, model, rows)` on the clock."""

    clock: Clock  # time source
    latency_s: LatencyFn  # service time of a batch
    start_s: StartFn = lambda spec, models: 0.0  # worker start + load time
    log: list[FakeBatch] = field(default_factory=list)  # every batch run, in order
    polls: dict[str, float] = field(default_factory=dict)  # slice id -> the poll time it was started with
    _workers: dict[str, _FakeWorker] = field(default_factory=dict)

    async def start(
        self, slice_id: str, spec: SliceSpec, models: Mapping[str, ModelConfig], on_exit: ExitCallback, processes: int = 1,
        poll_s: float = 0.0,
    ) -> WorkerInfo:
        delay = self.start_s(spec, list(models))
        if delay > 0:
            await self.clock.sleep(delay)
        self._workers[slice_id] = _FakeWorker(spec, dict(models), on_exit, [self.clock.now()] * max(1, processes))
        self.polls[slice_id] = poll_s  # recorded only: a fake worker on a virtual clock never polls
        return WorkerInfo(None, delay, 0.0)

    async def load(self, slice_id: str, model: ModelConfig) -> None:
        self._worker(slice_id).models[model.model.name] = model

    async def unload(self, slice_id: str, model: str) -> None:
        self._worker(slice_id).models.pop(model, None)

    async def run(self, slice_id: str, model: str, inputs: Arrays, outputs: Sequence[str] | None) -> BatchResult:
        worker = self._worker(slice_id)
        config = worker.models[model]
        rows = len(inputs[0][1]) if inputs and config.batched else 1
        now = self.clock.now()
        process = min(range(len(worker.free_s)), key=worker.free_s.__getitem__)
        started = max(now, worker.free_s[process])  # behind what that process holds already
        compute_s = self.latency_s(worker.spec, model, rows)
        worker.free_s[process] = started + compute_s
        await self.clock.sleep(started + compute_s - now)
        if not worker.alive:
            raise WorkerLostError(f"the worker of slice {slice_id} exited while running this request")
        self.log.append(FakeBatch(slice_id, worker.spec, model, inputs, started, self.clock.now()))
        wanted = [o for o in config.outputs if outputs is None or o.name in outputs]
        lead = (rows,) if config.batched else ()
        arrays = [(o.name, np.zeros(lead + tuple(max(1, d) for d in o.shape), o.datatype.numpy)) for o in wanted]
        return BatchResult(arrays, compute_s)

    async def stop(self, slice_id: str, force: bool = False) -> None:
        worker = self._workers.pop(slice_id, None)
        if worker is not None:
            worker.alive = False

    def alive(self, slice_id: str) -> bool:
        worker = self._workers.get(slice_id)
        return worker is not None and worker.alive

    def status(self, slice_id: str) -> WorkerStatus:
        worker = self._workers.get(slice_id)
        return WorkerStatus(None, worker is not None and worker.alive, None)

    def crash(self, slice_id: str) -> None:
        """Make a worker die as a process would (tests of restarts)."""
        worker = self._workers.pop(slice_id)
        worker.alive = False
        worker.on_exit(slice_id, -9)

    def _worker(self, slice_id: str) -> _FakeWorker:
        worker = self._workers.get(slice_id)
        if worker is None or not worker.alive:
            raise UnavailableError(f"the worker of slice {slice_id} is not running")
        return worker
