"""One slice at run time: the live driver of its SliceScheduler. It decides nothing itself --
decide (scheduler.schedule), execute (executor.run), feed back (scheduler.completed) -- and
keeps the worker up: a worker that exits, or runs a batch far past its limit (hung), is
replaced; the requests it held fail with WorkerLostError (the data plane retries them on another
slice when it can); one that cannot come back fails what it holds, so nothing waits forever."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import ModelplexError, UnavailableError, WorkerLostError
from modelplex.dispatch.scheduler import Dispatch, SliceScheduler
from modelplex.runtime.clock import Clock, Timer
from modelplex.runtime.executor import Executor
from modelplex.serving.books import ModelBook, Pending
from modelplex.serving.warmup import run_warmup

log = logging.getLogger(__name__)

MIN_BATCH_TIMEOUT_S = 10.0  # a batch running longer than this and BATCH_TIMEOUT_FACTOR x its prediction is hung
BATCH_TIMEOUT_FACTOR = 20.0
WATCH_S = 0.5  # how often running batches are checked against their limit
RECENT_S = 10.0  # batch ends kept for recent_utilisation (its window is at most this)
WORKER_POLL_S = 0.0005  # a worker on cores of its own polls this long for its next batch (runtime.worker)


class SliceRunner:
    """A slice's worker and its scheduler. All methods run on the event loop."""

    def __init__(
        self, slice_id: str, spec: SliceSpec, books: list[ModelBook], scheduler: SliceScheduler[Pending],
        executor: Executor, clock: Clock, min_batch_timeout_s: float = MIN_BATCH_TIMEOUT_S, own_cores: bool = False,
    ) -> None:
        self.slice_id = slice_id  # unique while the server runs
        self.slice = spec  # the device share
        self.books = {b.config.model.name: b for b in books}  # models served here
        self.scheduler = scheduler  # the slice's dispatch policy
        self.executor = executor  # runs the worker
        self.clock = clock  # time source
        self.names = list(scheduler.models)
        self.restart_count = 0
        self.failing: str | None = None  # why the last restart failed, while the worker is down
        self.busy_s = 0.0  # compute time spent, for utilisation
        self.started_at = clock.now()
        self._started = False
        self._closing = False
        self._timer: Timer | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # batches in flight
        self._recent: deque[tuple[float, float]] = deque()  # (end, seconds busy) of recent batches
        self._running: dict[int, Dispatch[Pending]] = {}  # id(dispatch) -> batch in flight
        self.min_batch_timeout_s = min_batch_timeout_s  # floor of a batch's time limit
        # cores the frontend does not run on: the next batch is handed over before the answers
        # of the last are written (measured +2 to +10 % there; where the two share cores, the
        # worker's threads then compete with the answers, so it waits for them)
        self.own_cores = own_cores
        self._watch: Timer | None = None  # checks running batches against their limit
        self._transport_s = 0.0  # typical round trip beyond the worker's compute (smoothed)
        self._last_done_s = -float("inf")  # when the last batch ended (a queued batch begins then)

    @property
    def ready(self) -> bool:
        return self._started and not self._closing and self.failing is None and self.executor.alive(self.slice_id)

    @property
    def idle(self) -> bool:
        return self.scheduler.idle

    @property
    def batch_sizes(self) -> dict[str, int]:
        return {m: self.scheduler.batch_size(m) for m in self.names}

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        models = {n: b.config for n, b in self.books.items()}
        # a worker alone on cores of its own polls for its next batch (several would take turns)
        poll_s = WORKER_POLL_S if self.own_cores and self.scheduler.processes == 1 else 0.0
        await self.executor.start(self.slice_id, self.slice, models, self._on_exit, self.scheduler.processes, poll_s)
        try:
            for config in models.values():
                if config.warmup:  # before the slice is ready: its first requests find a warm worker
                    await run_warmup(self.executor, self.slice_id, config)
        except ModelplexError:
            await self.executor.stop(self.slice_id, force=True)
            raise
        self._started = True

    async def stop(self, reason: str = "model unloaded") -> None:
        """Refuse and fail what is queued, let running batches finish briefly, stop the worker."""
        self._closing = True
        self.scheduler.refuse(f"slice {self.slice_id} is stopping")
        if self._timer is not None:
            self._timer.cancel()
        self._fail_queued(lambda m: UnavailableError(f"model {m}: {reason}"))
        if self._restart_task is not None:
            self._restart_task.cancel()
        if self._watch is not None:
            self._watch.cancel()
        hung = False
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=10.0)
            hung = bool(pending)
        await self.executor.stop(self.slice_id, force=hung)

    async def drain_and_stop(self, timeout_s: float = 30.0) -> None:
        """Serve what is queued (routing has moved away), then stop."""
        self.scheduler.refuse(f"slice {self.slice_id} is retired")
        deadline = self.clock.now() + timeout_s
        while not self.idle and self.ready and self.clock.now() < deadline:
            await self.clock.sleep(0.005)
        await self.stop("slice retired")

    def set_batch(self, model: str, batch: int) -> None:
        self.scheduler.set_batch(model, batch)

    # ---- decide, execute, feed back ------------------------------------------------------
    def pump(self) -> None:
        """Run every batch the scheduler decides on now; wake up when it says."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.scheduler.turns.busy:
            return  # every process runs a batch: the next completion pumps again
        if not self._started or self._closing or not self.executor.alive(self.slice_id):
            return  # a restarting worker: its queue waits for it
        now = self.clock.now()
        while (d := self.scheduler.schedule(now)) is not None:
            for model, req in d.expired:
                book = self.books[model]
                book.fail(req, book.late(req, "cannot be met; rejected before running"), now)
            if d.requests:
                self._running[id(d)] = d
                task = asyncio.ensure_future(self._run(d))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                if self._watch is None:
                    self._watch = self.clock.call_at(now + WATCH_S, self._check_hung)
        wake = self.scheduler.wake_at(now)
        if wake is not None:
            self._timer = self.clock.call_at(wake, self.pump)

    async def _run(self, d: Dispatch[Pending]) -> None:
        book = self.books[d.model]
        reqs = d.requests
        try:
            result = await self.executor.run(self.slice_id, d.model, book.gather_inputs(reqs), book.wanted_outputs(reqs))
        except Exception as exc:  # never leave a request unanswered
            if id(d) not in self._running:
                return  # given up on as hung: its requests were answered then
            if not isinstance(exc, ModelplexError):
                log.error("batch of %s on %s failed: %r", d.model, self.slice_id, exc)
                exc = UnavailableError(f"model {d.model}: internal error running the batch: {exc}")
            now = self.clock.now()
            for r in reqs:
                book.fail(r, exc, now)
            self._finished(d, None, now)
            self.pump()
            return
        done = self.clock.now()
        begun = self._begun_s(d)
        latency_s = done - begun
        if not self._finished(d, self._observed_s(latency_s, result.compute_s), done):
            return  # given up on as hung: its requests were answered then
        self.busy_s += result.compute_s
        phases = book.batch_done(d.rows, latency_s, result.compute_s)
        if self.own_cores:
            self.pump()
        book.answer(reqs, result.outputs, phases, begun, done)
        if not self.own_cores:
            self.pump()

    def _finished(self, d: Dispatch[Pending], latency_s: float | None, now: float) -> bool:
        """Feed a batch's end back; False when it had been given up on already."""
        if self._running.pop(id(d), None) is None:
            return False
        recent = self._recent
        recent.append((now, now - self._begun_s(d)))
        self._last_done_s = now
        while recent[0][0] < now - RECENT_S:  # kept for recent_utilisation, bounded
            recent.popleft()
        self.scheduler.completed(d, latency_s, now)
        return True

    def _begun_s(self, d: Dispatch[Pending]) -> float:
        """When the batch began to run: a batch handed to a busy process (a depth over one) waits
        behind the batch before it, and that wait is neither the model's time nor the channel's."""
        return max(d.started_s, self._last_done_s) if self.scheduler.processes == 1 else d.started_s

    def _observed_s(self, latency_s: float, compute_s: float) -> float:
        """The batch time the estimator learns: the worker's own compute time plus the usual
        round trip, so a round trip held up by a busy event loop does not count as the model
        being slow."""
        extra = max(0.0, latency_s - compute_s)
        usual = 2 * self._transport_s + 0.002
        self._transport_s += 0.1 * (min(extra, 2 * usual) - self._transport_s)  # an outlier moves it little
        return compute_s + min(extra, usual)

    # ---- faults --------------------------------------------------------------------------
    def _check_hung(self) -> None:
        """Replace the worker when a batch runs past its limit (a worker that still answers its
        heartbeat but never finishes); look again while batches run."""
        self._watch = None
        if not self._running or self._closing:
            return
        now = self.clock.now()
        for d in self._running.values():
            limit = max(self.min_batch_timeout_s, BATCH_TIMEOUT_FACTOR * d.predicted_s)
            if now - d.started_s > limit:
                why = f"a batch of {d.model} ran {now - d.started_s:.1f} s, over its limit of {limit:.1f} s"
                self._replace(why)
                return
        self._watch = self.clock.call_at(now + WATCH_S, self._check_hung)

    def replace_worker(self, why: str) -> None:
        """Replace a running worker now (e.g. its GPU's MPS server faulted): what it runs fails
        with WorkerLostError, its queue waits for the new one."""
        restarting = self._restart_task is not None and not self._restart_task.done()
        if self._started and not self._closing and not restarting:
            self._replace(why)

    def _replace(self, why: str) -> None:
        """Give up on the running batches (answered now with WorkerLostError), kill the worker and
        start a new one; the queue waits for it."""
        log.warning("slice %s: %s; replacing its worker", self.slice_id, why)
        now = self.clock.now()
        for d in list(self._running.values()):
            err = WorkerLostError(f"model {d.model}: the worker of slice {self.slice_id} hung ({why})")
            for r in d.requests:
                self.books[d.model].fail(r, err, now)
            self._finished(d, None, now)
        self.scheduler.set_down(True)
        self._restart_task = asyncio.ensure_future(self._kill_and_restart())

    async def _kill_and_restart(self) -> None:
        await self.executor.stop(self.slice_id, force=True)
        await self._restart()

    def _fail_queued(self, error: Callable[[str], ModelplexError]) -> None:
        now = self.clock.now()
        for model, req in self.scheduler.drain():
            self.books[model].fail(req, error(model), now)

    def _on_exit(self, slice_id: str, code: int | None) -> None:
        if self._closing:
            return
        log.warning("worker of slice %s exited (code %s); restarting", self.slice_id, code)
        self.scheduler.set_down(True)
        self._restart_task = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        delay_s = 0.0
        while not self._closing:
            if delay_s:
                await self.clock.sleep(delay_s)
            try:
                await self.start()
            except ModelplexError as exc:
                log.error("restart of slice %s failed: %s", self.slice_id, exc)
                if self.failing is None:
                    # nothing may wait on a worker that does not come back: answer what is queued
                    self.failing = why = f"the worker of slice {self.slice_id} cannot be restarted: {exc.message}"
                    self.scheduler.refuse(why)
                    self._fail_queued(lambda m: UnavailableError(f"model {m}: {why}"))
                delay_s = min(5.0, delay_s * 2 or 0.2)
                continue
            if self._closing:
                await self.executor.stop(self.slice_id)
                return
            self.restart_count += 1
            self.failing = None
            self.scheduler.refuse(None)
            self.scheduler.set_down(False)
            self.pump()
            return

    # ---- status --------------------------------------------------------------------------
    def recent_utilisation(self, window_s: float = 2.0) -> float:
        """Busy fraction of the slice over the last `window_s` seconds (running batches included)."""
        now = self.clock.now()
        while self._recent and self._recent[0][0] < now - window_s:
            self._recent.popleft()
        busy = sum(min(b, window_s) for _, b in self._recent)
        starts = [d.started_s for d in self._running.values()]
        if starts:  # one process runs its batches one after another: their spans overlap
            busy += now - min(starts) if self.scheduler.processes == 1 else sum(now - t for t in starts)
        return min(1.0, busy / window_s / self.scheduler.processes)

    def describe(self) -> dict[str, Any]:
        w = self.executor.status(self.slice_id)
        uptime_s = max(1e-9, self.clock.now() - self.started_at)
        return {
            "slice_id": self.slice_id,
            "cpus": list(self.slice.cpus),
            "size": self.slice.size,
            "models": self.names,
            "worker": {"pid": w.pid, "alive": w.alive, "rss_mb": w.rss_mb, "pids": list(w.pids)},
            "processes": self.scheduler.processes,
            "depth": self.scheduler.depth,
            "queued_rows": {name: self.scheduler.queued_rows(name) for name in self.names},
            "restarts": self.restart_count,
            "failing": self.failing,
            "utilisation": round(min(1.0, self.busy_s / uptime_s), 4),
        }
