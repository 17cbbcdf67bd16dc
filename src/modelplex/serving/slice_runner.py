"""One slice at run time: its worker process, a deadline-aware queue per model it serves, and the
duty-cycle turn-taking between those models. The asyncio driver of the pure policies
(BatchQueue, DutyCycleScheduler); it adds no policy of its own."""

from __future__ import annotations

import asyncio
import math
from collections import deque
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeadlineError, InvalidArgumentError, ModelplexError, UnavailableError
from modelplex.control.attainment import AttainmentWindow
from modelplex.core.model import ModelConfig
from modelplex.planning.dutycycle import DutyCycleScheduler
from modelplex.runtime.gpu import MpsDaemon, worker_env
from modelplex.runtime.worker_handle import WorkerHandle
from modelplex.serving.batching import NO_DEADLINE, Admission, Batch, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.serving.stats import BatchTimes, Metrics, ModelStats
from modelplex.serving.types import InferOutput, InferRequest, InferResponse

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


@dataclass
class ModelBook:
    """Per-model bookkeeping shared by every slice that serves the model."""

    config: ModelConfig  # the model version served
    stats: ModelStats  # KServe statistics
    metrics: Metrics  # Prometheus metrics of the server

    def __post_init__(self) -> None:
        self.window = AttainmentWindow()  # requests within their deadline, recent seconds
        name, version = self.config.model.name, self.config.model.version
        m = self.metrics
        self.m_requests = m.requests.labels(name, version)
        self.m_fail_deadline = m.failures.labels(name, version, "deadline")
        self.m_fail_error = m.failures.labels(name, version, "error")
        self.m_queue = m.queue_s.labels(name, version)
        self.m_compute = m.compute_s.labels(name, version)
        self.m_request = m.request_s.labels(name, version)
        self.m_rows = m.batch_rows.labels(name, version)

    def rejected(self, deadline: bool, now: float) -> None:
        self.window.record(now, False)
        self.stats.fail.add(0.0)
        if deadline:
            self.stats.rejected_deadline += 1
            self.m_fail_deadline.inc()
        else:
            self.m_fail_error.inc()


class SliceRunner:
    """A slice's worker and queues. All methods run on the event loop."""

    def __init__(
        self,
        slice_id: str,
        slice_spec: SliceSpec,
        books: list[ModelBook],
        batch_sizes: dict[str, int] | None = None,
        duty_cycle_ms: float = 0.0,
        provider: str = "cpu",
        mps: MpsDaemon | None = None,
    ) -> None:
        self.slice_id = slice_id
        self.slice = slice_spec
        self.books = {b.config.model.name: b for b in books}
        self.provider = "cuda" if slice_spec.device_id.startswith("gpu") else provider
        self.env = worker_env(slice_spec, mps)  # a GPU slice's MPS share; empty on a CPU slice
        self.queues: dict[str, BatchQueue[Pending]] = {}
        for b in books:
            cfg = b.config.batching
            max_rows = max(1, cfg.max_batch_size)
            if batch_sizes and b.config.model.name in batch_sizes:
                max_rows = max(1, min(max_rows, batch_sizes[b.config.model.name]))
            self.queues[b.config.model.name] = BatchQueue(
                BatchPolicyConfig(
                    max_batch_size=max_rows,
                    max_queue_delay_s=cfg.max_queue_delay_us / 1e6,
                    preferred_batch_sizes=cfg.preferred_batch_sizes,
                )
            )
        self.names = list(self.queues)
        self.batch_sizes = {name: q.config.max_batch_size for name, q in self.queues.items()}
        self.turns = DutyCycleScheduler(self.names, duty_cycle_ms)
        self.worker: WorkerHandle | None = None
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._restart_task: asyncio.Task[None] | None = None
        self.restart_count = 0
        self.failing: str | None = None  # why the last restart failed, while the worker is down
        self.busy_s = 0.0  # compute time spent, for utilisation
        self.started_at = time.monotonic()
        self._recent: deque[tuple[float, float]] = deque()  # (end, seconds busy) of recent batches
        self._batch_started: float | None = None  # start of the running batch

    @property
    def ready(self) -> bool:
        return not self._closing and self.worker is not None and self.worker.alive

    @property
    def idle(self) -> bool:
        return not self._busy and all(len(q) == 0 for q in self.queues.values())

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        handle = self._new_worker()
        await handle.start()
        self.worker = handle

    async def stop(self, reason: str = "model unloaded") -> None:
        """Reject what is queued, let the running batch finish briefly, stop the worker."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        for name, q in self.queues.items():
            for req in q.drain():
                self._fail(name, req, UnavailableError(f"model {name}: {reason}"))
        if self._restart_task is not None:
            self._restart_task.cancel()
        deadline = time.monotonic() + 10.0
        while self._busy and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self.worker is not None:
            await self.worker.stop()

    async def drain_and_stop(self, timeout_s: float = 30.0) -> None:
        """Serve what is queued (no new requests arrive once routing moved away), then stop."""
        deadline = time.monotonic() + timeout_s
        while not self.idle and self.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await self.stop("slice retired")

    # ---- requests ------------------------------------------------------------------------
    def submit(self, model: str, queued: QueuedRequest[Pending], now: float) -> Admission:
        if self._closing:
            return Admission(False, f"slice {self.slice_id} is stopping")
        if self.failing is not None:
            return Admission(False, f"the worker of slice {self.slice_id} cannot be restarted: {self.failing}")
        admission = self.queues[model].submit(queued, now)
        if admission.admitted:
            self.pump()
        return admission

    def set_batch(self, model: str, batch: int) -> None:
        """Run `model` at batches of at most `batch` rows from now on (bounded by the model's own)."""
        q = self.queues[model]
        limit = max(1, self.books[model].config.batching.max_batch_size)
        q.config = replace(q.config, max_batch_size=max(1, min(batch, limit)))
        self.batch_sizes[model] = q.config.max_batch_size

    def predicted_finish_s(self, model: str, rows: int, now: float) -> float:
        """When a request of `rows` without a deadline would finish here (for routing)."""
        q = self.queues[model]
        return q.predict_finish(rows, NO_DEADLINE, now) + sum(
            other.backlog_s() for name, other in self.queues.items() if name != model
        )

    def pump(self) -> None:
        """Offer the free slice to the models in turn; run the first batch one of them forms."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self.ready:
            return
        now = time.monotonic()
        wake: float | None = None
        for index in self.turns.candidates(now):
            name = self.names[index]
            q = self.queues[name]
            while True:
                batch = q.next_batch(now)
                if batch is None:
                    break
                for req in batch.expired:
                    self.books[name].stats.rejected_deadline += 1
                    self.books[name].m_fail_deadline.inc()
                    self._fail(name, req, DeadlineError(f"model {name}: deadline cannot be met; rejected before running"))
                if batch.requests:
                    self._busy = True
                    self._batch_started = now
                    self.turns.started(index, now, batch.predicted_s)
                    asyncio.ensure_future(self._run(name, batch, now))
                    return
                if not (batch.expired and len(q)):
                    break  # expiring may have made the rest ready: ask again, else next model
            if len(q):
                w = q.wake_at(now)
                if w is not None:
                    wake = w if wake is None else min(wake, w)
        if wake is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + max(0.0, wake - now), self.pump)

    async def _run(self, name: str, batch: Batch[Pending], started: float) -> None:
        reqs = batch.requests
        book = self.books[name]
        worker = self.worker
        try:
            assert worker is not None
            outputs, compute_s = await worker.run(self._gather_inputs(book, reqs), self._wanted_outputs(book, reqs), name)
        except Exception as exc:  # never leave a request unanswered
            if not isinstance(exc, ModelplexError):
                print(f"modelplex: batch of {name} on {self.slice_id} failed: {exc!r}", file=sys.stderr)
                exc = UnavailableError(f"model {name}: internal error running the batch: {exc}")
            for r in reqs:
                self._fail(name, r, exc)
            self._finish(batch, name, None, time.monotonic())
            self.pump()
            return
        done = time.monotonic()
        latency_s = done - started
        self._finish(batch, name, latency_s, done)
        st = book.stats
        rows = batch.rows
        st.execution_count += 1
        st.inference_count += rows
        st.last_inference_ms = int(time.time() * 1000)
        # the worker measured compute_s; the rest of the round trip is split as input (assembly,
        # send) and output (receive, split), half each: both are the same channel's copies
        overhead_s = max(0.0, latency_s - compute_s) / 2
        st.batch_sizes.setdefault(rows, BatchTimes()).add(overhead_s, compute_s, overhead_s)
        book.m_compute.observe(compute_s)
        book.m_rows.observe(rows)
        self.busy_s += compute_s
        self._answer(book, reqs, outputs, (overhead_s, compute_s, overhead_s), started, done)
        self.pump()

    def _finish(self, batch: Batch[Pending], name: str, latency_s: float | None, now: float) -> None:
        self._busy = False
        if self._batch_started is not None:
            self._recent.append((now, now - self._batch_started))
            self._batch_started = None
        self.turns.finished(now)
        self.queues[name].completed(batch, latency_s, now)

    # ---- helpers -------------------------------------------------------------------------
    @staticmethod
    def _gather_inputs(book: ModelBook, reqs: list[QueuedRequest[Pending]]) -> list[tuple[str, np.ndarray]]:
        first = reqs[0].payload.request
        if len(reqs) == 1:
            return [(i.name, i.array) for i in first.inputs]
        by_name = [{i.name: i.array for i in r.payload.request.inputs} for r in reqs]
        return [(spec.name, np.concatenate([d[spec.name] for d in by_name])) for spec in book.config.inputs]

    @staticmethod
    def _wanted_outputs(book: ModelBook, reqs: list[QueuedRequest[Pending]]) -> list[str] | None:
        names: set[str] = set()
        for r in reqs:
            outs = r.payload.request.outputs
            if not outs:
                return None
            names.update(o.name for o in outs)
        return [o.name for o in book.config.outputs if o.name in names]

    def _answer(
        self,
        book: ModelBook,
        reqs: list[QueuedRequest[Pending]],
        outputs: list[tuple[str, np.ndarray]],
        phases_s: tuple[float, float, float],
        started: float,
        done: float,
    ) -> None:
        config = book.config
        dtypes = {o.name: o.datatype for o in config.outputs}
        pos = 0
        single = len(reqs) == 1
        st = book.stats
        for r in reqs:
            p = r.payload
            if single or not config.batched:
                mine = outputs
            else:
                mine = [(n, a[pos : pos + r.rows]) for n, a in outputs]
            pos += r.rows
            wanted = p.request.outputs
            order = [o.name for o in wanted] if wanted else [n for n, _ in mine]
            arrays = dict(mine)
            response = InferResponse(
                model=config.model.name,
                version=config.model.version,
                id=p.request.id,
                outputs=[InferOutput(n, dtypes[n], tuple(arrays[n].shape), arrays[n]) for n in order],
            )
            if not p.future.done():
                p.future.set_result(response)
            book.window.record(done, done <= r.deadline_s)
            st.success.add(done - p.enqueued_s)
            st.queue.add(started - p.enqueued_s)
            st.compute_input.add(phases_s[0])
            st.compute_infer.add(phases_s[1])
            st.compute_output.add(phases_s[2])
            book.m_requests.inc()
            book.m_queue.observe(started - p.enqueued_s)
            book.m_request.observe(done - p.enqueued_s)

    def _fail(self, name: str, req: QueuedRequest[Pending], exc: ModelplexError) -> None:
        p = req.payload
        if not p.future.done():
            p.future.set_exception(exc)
        book = self.books[name]
        now = time.monotonic()
        book.window.record(now, False)
        book.stats.fail.add(now - p.enqueued_s)
        if not isinstance(exc, DeadlineError):
            book.m_fail_error.inc()

    def _new_worker(self) -> WorkerHandle:
        return WorkerHandle(
            self.slice_id,
            {name: b.config.path for name, b in self.books.items()},
            self.slice,
            provider=self.provider,
            on_exit=self._on_worker_exit,
            env=self.env,
        )

    def _on_worker_exit(self, handle: WorkerHandle, code: int | None) -> None:
        if self._closing or handle is not self.worker:
            return
        print(f"modelplex: worker of slice {self.slice_id} exited (code {code}); restarting", file=sys.stderr)
        self._restart_task = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        delay_s = 0.0
        while not self._closing:
            if delay_s:
                await asyncio.sleep(delay_s)
            fresh = self._new_worker()
            try:
                await fresh.start()
            except ModelplexError as exc:
                print(f"modelplex: restart of slice {self.slice_id} failed: {exc}", file=sys.stderr)
                if self.failing is None:
                    # nothing may wait on a worker that does not come back: answer what is queued
                    self.failing = exc.message
                    for name, q in self.queues.items():
                        for req in q.drain():
                            self._fail(name, req, UnavailableError(
                                f"model {name}: the worker of slice {self.slice_id} cannot be restarted: {exc.message}"))
                delay_s = min(5.0, delay_s * 2 or 0.2)
                continue
            if self._closing:
                await fresh.stop()
                return
            self.worker = fresh
            self.restart_count += 1
            self.failing = None
            self.pump()
            return

    def recent_utilisation(self, window_s: float = 2.0) -> float:
        """Busy fraction of the slice over the last `window_s` seconds (the running batch included)."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - window_s:
            self._recent.popleft()
        busy = sum(min(b, window_s) for _, b in self._recent)
        if self._batch_started is not None:
            busy += now - self._batch_started
        return min(1.0, busy / window_s)

    def describe(self) -> dict[str, Any]:
        w = self.worker
        uptime_s = max(1e-9, time.monotonic() - self.started_at)
        return {
            "slice_id": self.slice_id,
            "cpus": list(self.slice.cpus),
            "size": self.slice.size,
            "models": self.names,
            "worker": {"pid": w.pid if w else None, "alive": bool(w and w.alive), "rss_mb": _rss_mb(w.pid if w else None)},
            "queued_rows": {name: q.queued_rows for name, q in self.queues.items()},
            "restarts": self.restart_count,
            "failing": self.failing,
            "utilisation": round(min(1.0, self.busy_s / uptime_s), 4),
        }


def _rss_mb(pid: int | None) -> float | None:
    """Resident memory of a worker now (None when it is gone)."""
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
    except psutil.Error:
        return None
