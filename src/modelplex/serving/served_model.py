"""One model version being served: its queue (the pure BatchQueue) driven by asyncio events and
timers, and the slice workers that run its batches."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeadlineError, InvalidArgumentError, ModelplexError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.runtime.worker_handle import WorkerHandle
from modelplex.serving.batching import NO_DEADLINE, Batch, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.serving.stats import BatchTimes, Metrics, ModelStats
from modelplex.serving.types import InferOutput, InferRequest, InferResponse
from modelplex.serving.validate import validate_request

# µs; a request timeout beyond an hour is a client bug, not a deadline
MAX_TIMEOUT_US = 3_600_000_000


@dataclass
class Pending:
    """What the runtime keeps with a queued request (the policy never looks inside)."""

    request: InferRequest  # the decoded request
    future: asyncio.Future[InferResponse]  # resolved with the answer or an error
    enqueued_s: float  # monotonic time it was queued


def deadline_of(request: InferRequest, slo_ms: float | None, now: float) -> float:
    """Absolute deadline: the request's `timeout` (µs) if given, else the model's SLO, else none."""
    timeout = request.parameters.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout):
            raise InvalidArgumentError(f"parameter 'timeout' must be a number of microseconds, got {timeout!r}")
        if timeout <= 0 or timeout > MAX_TIMEOUT_US:
            raise InvalidArgumentError(
                f"parameter 'timeout' must be between 1 and {MAX_TIMEOUT_US} microseconds, got {timeout}"
            )
        return now + float(timeout) / 1e6
    if slo_ms is not None:
        return now + slo_ms / 1e3
    return NO_DEADLINE


class ServedModel:
    """Queue + workers of one model version. All methods run on the event loop."""

    def __init__(self, config: ModelConfig, slices: list[SliceSpec], metrics: Metrics, provider: str = "cpu") -> None:
        self.config = config
        self.slices = slices
        self.provider = provider
        b = config.batching
        self.queue: BatchQueue[Pending] = BatchQueue(
            BatchPolicyConfig(
                max_batch_size=max(1, b.max_batch_size),
                max_queue_delay_s=b.max_queue_delay_us / 1e6,
                preferred_batch_sizes=b.preferred_batch_sizes,
                instances=len(slices),
            )
        )
        self.stats = ModelStats()
        self.workers: list[WorkerHandle] = []
        self._free: list[WorkerHandle] = []
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()
        self.restart_count = 0
        name, version = config.model.name, config.model.version
        self._m_requests = metrics.requests.labels(name, version)
        self._m_fail_deadline = metrics.failures.labels(name, version, "deadline")
        self._m_fail_error = metrics.failures.labels(name, version, "error")
        self._m_queue = metrics.queue_s.labels(name, version)
        self._m_compute = metrics.compute_s.labels(name, version)
        self._m_request = metrics.request_s.labels(name, version)
        self._m_rows = metrics.batch_rows.labels(name, version)

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def ready(self) -> bool:
        return not self._closing and any(w.alive for w in self.workers)

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start one worker per slice, all at once; fails if any cannot load the model."""
        handles = [self._new_worker(i, s) for i, s in enumerate(self.slices)]
        results = await asyncio.gather(*(h.start() for h in handles), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(*(h.stop() for h in handles), return_exceptions=True)
            err = errors[0]
            raise err if isinstance(err, ModelplexError) else UnavailableError(str(err))
        self.workers = handles
        self._free = list(handles)

    async def stop(self, reason: str = "model unloaded") -> None:
        """Reject what is queued, let in-flight batches finish briefly, stop the workers."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        for req in self.queue.drain():
            self._fail(req, UnavailableError(f"model {self.name}: {reason}"))
        for task in list(self._restarts):
            task.cancel()
        deadline = time.monotonic() + 10.0
        while len(self._free) < sum(1 for w in self.workers if w.alive) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)

    # ---- requests ------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        if self._closing:
            raise UnavailableError(f"model {self.name} is unloading")
        rows = validate_request(self.config, request)
        now = time.monotonic()
        deadline = deadline_of(request, self.config.batching.slo_ms, now)
        future: asyncio.Future[InferResponse] = asyncio.get_running_loop().create_future()
        queued = QueuedRequest(now, deadline, rows, Pending(request, future, now))
        admission = self.queue.submit(queued, now)
        if not admission.admitted:
            self.stats.rejected_deadline += 1
            self.stats.fail.add(0.0)
            self._m_fail_deadline.inc()
            raise DeadlineError(f"model {self.name}: {admission.reason}")
        self.pump()
        return await future

    def pump(self) -> None:
        """Dispatch batches to free workers as the policy decides; arm a timer if it waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        while self._free:
            batch = self.queue.next_batch(now)
            if batch is None:
                break
            for req in batch.expired:
                self.stats.rejected_deadline += 1
                self._m_fail_deadline.inc()
                self._fail(req, DeadlineError(f"model {self.name}: deadline cannot be met; rejected before running"))
            if not batch.requests:
                if batch.expired and len(self.queue):
                    continue  # expiring may have made the rest ready
                break
            worker = self._free.pop()
            asyncio.ensure_future(self._run(worker, batch, now))
        if self._free and len(self.queue):
            wake = self.queue.wake_at(now)
            if wake is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_at(loop.time() + max(0.0, wake - now), self.pump)

    async def _run(self, worker: WorkerHandle, batch: Batch[Pending], started: float) -> None:
        reqs = batch.requests
        try:
            inputs = self._gather_inputs(reqs)
            wanted = self._wanted_outputs(reqs)
            outputs, compute_s = await worker.run(inputs, wanted)
        except ModelplexError as exc:
            for r in reqs:
                self._fail(r, exc)
            if worker.alive:
                self._release(worker)
            return
        except Exception as exc:  # never leave a request unanswered
            print(f"modelplex: batch on {worker.label} failed: {exc!r}", file=sys.stderr)
            for r in reqs:
                self._fail(r, UnavailableError(f"model {self.name}: internal error running the batch: {exc}"))
            if worker.alive:
                self._release(worker)
            return
        done = time.monotonic()
        latency_s = done - started
        self.queue.completed(batch, latency_s, done)
        rows = batch.rows
        st = self.stats
        st.execution_count += 1
        st.inference_count += rows
        st.last_inference_ms = int(time.time() * 1000)
        # the worker measured compute_s; the rest of the round trip is split as input (assembly,
        # send) and output (receive, split), half each: both are the same channel's copies
        overhead_s = max(0.0, latency_s - compute_s) / 2
        st.batch_sizes.setdefault(rows, BatchTimes()).add(overhead_s, compute_s, overhead_s)
        self._m_compute.observe(compute_s)
        self._m_rows.observe(rows)
        self._answer(reqs, outputs, (overhead_s, compute_s, overhead_s), started, done)
        self._release(worker)

    # ---- helpers -------------------------------------------------------------------------
    def _release(self, worker: WorkerHandle) -> None:
        self._free.append(worker)
        if not self._closing:
            self.pump()

    def _gather_inputs(self, reqs: list[QueuedRequest[Pending]]) -> list[tuple[str, np.ndarray]]:  # type: ignore[type-arg]
        first = reqs[0].payload.request
        if len(reqs) == 1:
            return [(i.name, i.array) for i in first.inputs]
        by_name = [{i.name: i.array for i in r.payload.request.inputs} for r in reqs]
        return [(spec.name, np.concatenate([d[spec.name] for d in by_name])) for spec in self.config.inputs]

    def _wanted_outputs(self, reqs: list[QueuedRequest[Pending]]) -> list[str] | None:
        names: set[str] = set()
        for r in reqs:
            outs = r.payload.request.outputs
            if not outs:
                return None
            names.update(o.name for o in outs)
        return [o.name for o in self.config.outputs if o.name in names]

    def _answer(
        self,
        reqs: list[QueuedRequest[Pending]],
        outputs: list[tuple[str, np.ndarray]],  # type: ignore[type-arg]
        phases_s: tuple[float, float, float],
        started: float,
        done: float,
    ) -> None:
        dtypes = {o.name: o.datatype for o in self.config.outputs}
        pos = 0
        single = len(reqs) == 1
        version = self.config.model.version
        for r in reqs:
            p = r.payload
            if single or not self.config.batched:
                mine = outputs
            else:
                mine = [(n, a[pos : pos + r.rows]) for n, a in outputs]
            pos += r.rows
            wanted = p.request.outputs
            order = [o.name for o in wanted] if wanted else [n for n, _ in mine]
            arrays = dict(mine)
            response = InferResponse(
                model=self.name,
                version=version,
                id=p.request.id,
                outputs=[InferOutput(n, dtypes[n], tuple(arrays[n].shape), arrays[n]) for n in order],
            )
            if not p.future.done():
                p.future.set_result(response)
            self.stats.success.add(done - p.enqueued_s)
            self.stats.queue.add(started - p.enqueued_s)
            self.stats.compute_input.add(phases_s[0])
            self.stats.compute_infer.add(phases_s[1])
            self.stats.compute_output.add(phases_s[2])
            self._m_requests.inc()
            self._m_queue.observe(started - p.enqueued_s)
            self._m_request.observe(done - p.enqueued_s)

    def _fail(self, req: QueuedRequest[Pending], exc: ModelplexError) -> None:
        p = req.payload
        if not p.future.done():
            p.future.set_exception(exc)
        self.stats.fail.add(time.monotonic() - p.enqueued_s)
        if not isinstance(exc, DeadlineError):
            self._m_fail_error.inc()

    def _new_worker(self, index: int, slice_spec: SliceSpec) -> WorkerHandle:
        return WorkerHandle(
            f"{self.config.model}#{index}",
            self.config.path,
            slice_spec,
            provider=self.provider,
            on_exit=lambda h, code: self._on_worker_exit(index, h, code),
        )

    def _on_worker_exit(self, index: int, handle: WorkerHandle, code: int | None) -> None:
        if self._closing:
            return
        print(f"modelplex: worker {handle.label} exited (code {code}); restarting", file=sys.stderr)
        if handle in self._free:
            self._free.remove(handle)
        task = asyncio.ensure_future(self._restart(index, handle))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, index: int, old: WorkerHandle) -> None:
        delay_s = 0.0
        while not self._closing:
            if delay_s:
                await asyncio.sleep(delay_s)
            fresh = self._new_worker(index, old.slice)
            try:
                await fresh.start()
            except ModelplexError as exc:
                print(f"modelplex: restart of {fresh.label} failed: {exc}", file=sys.stderr)
                delay_s = min(5.0, delay_s * 2 or 0.2)
                continue
            self.workers = [fresh if w is old else w for w in self.workers]
            self.restart_count += 1
            self._release(fresh)
            return

    def describe(self) -> dict[str, Any]:
        return {
            "model": str(self.config.model),
            "workers": [
                {"pid": w.pid, "alive": w.alive, "cpus": list(w.slice.cpus), "rss_mb": _rss_mb(w.pid)}
                for w in self.workers
            ],
            "queued_rows": self.queue.queued_rows,
            "restarts": self.restart_count,
        }


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of a worker now (None when it is gone)."""
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
    except psutil.Error:
        return None
