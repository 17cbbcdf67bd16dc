"""Deadline-aware dynamic batching for one model's queue (pure: no I/O, `now` passed in).

The live runtime and the simulator drive the same object:
  submit(request, now) -> Admission         # admit, or reject now if the deadline is out of reach
  next_batch(now) -> Batch | None           # when an instance is free: what to run now, if anything
  wake_at(now) -> float | None              # when to ask next_batch again if it said "not yet"
  completed(batch, latency_s, now)          # feed back the measured latency
Requests run in priority order (lower level first: Triton's priority_levels), earliest deadline
first within a level; a request that can no longer meet its deadline given the predicted batch
latency is expired (rejected) rather than run late. With one level (all 0), plain EDF.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from modelplex.dispatch.latency import LatencyEstimator

P = TypeVar("P")

NO_DEADLINE = math.inf


@dataclass(slots=True)
class QueuedRequest(Generic[P]):
    """A request waiting in a model's queue."""

    arrival_s: float  # when it was submitted
    deadline_s: float  # when its answer is due (inf = none)
    rows: int  # batch rows it contributes (1 for a single sample)
    payload: P  # opaque to the policy: tensors and a future (runtime) or an id (simulator)
    seq: int = 0  # submission order, breaks deadline ties (FIFO among equals)
    cancelled: bool = False  # answered already (its client left, or it timed out): never run it
    probe: bool = False  # admitted although predicted late, to re-measure a stale estimate
    priority: int = 0  # priority level: lower runs first; deadline order within a level


@dataclass(frozen=True)
class Admission:
    """Answer of submit: admitted, or rejected with the reason."""

    admitted: bool  # True when queued
    reason: str = ""  # why it was rejected
    deadline: bool = False  # rejected because its deadline cannot be met (not for lack of room)


ADMITTED = Admission(True)  # shared: admission is the hot path of every request


@dataclass(slots=True)
class Batch(Generic[P]):
    """What next_batch decided: requests to run together now, and requests that expired."""

    requests: list[QueuedRequest[P]]  # to run now, in deadline order (may be empty)
    expired: list[QueuedRequest[P]] = field(default_factory=list)  # reject: deadline unreachable
    predicted_s: float = 0.0  # predicted latency of this batch

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.requests)


@dataclass(frozen=True)
class BatchPolicyConfig:
    """Settings of one queue."""

    max_batch_size: int = 1  # most rows in one batch (1 for a model without a batch axis)
    max_queue_delay_s: float = 0.0  # longest the oldest request waits for the batch to fill
    preferred_batch_sizes: tuple[int, ...] = ()  # dispatch at once when one of these is reached
    instances: int = 1  # workers draining this queue in parallel
    max_queue_rows: int = 100_000  # beyond this the queue is full and submit rejects
    probe_interval_s: float = 0.5  # with no batch measured for this long, one predicted-late request runs


class BatchQueue(Generic[P]):
    """One model's queue with deadline-aware dynamic batching: by priority level, then EDF."""

    def __init__(self, config: BatchPolicyConfig, estimator: LatencyEstimator | None = None) -> None:
        self.config = config
        self.estimator = estimator or LatencyEstimator()
        self._heap: list[tuple[int, float, int, QueuedRequest[P]]] = []  # (priority, deadline, seq, request)
        self._seq = itertools.count()
        self._rows = 0  # rows queued
        self._busy_until: list[float] = []  # predicted finish of each batch in flight
        self._latest_deadline = -math.inf  # no queued deadline is later (an upper bound)
        self._lowest_priority = 0  # no queued request has a larger level (an upper bound)
        self._last_probe_s = -math.inf  # when a request was last admitted as a probe

    # ---- queries -------------------------------------------------------------------------
    @property
    def queued_rows(self) -> int:
        return self._rows

    @property
    def in_flight(self) -> int:
        return len(self._busy_until)

    def __len__(self) -> int:
        return len(self._heap)

    # ---- policy --------------------------------------------------------------------------
    def submit(self, request: QueuedRequest[P], now: float, probe: bool = False) -> Admission:
        """Queue the request, or say why not. With `probe`, a request predicted to miss its
        deadline may still be admitted to re-measure a stale estimate (see _probe)."""
        cfg = self.config
        if request.rows > cfg.max_batch_size:
            return Admission(False, f"request has {request.rows} rows, more than the maximum batch size {cfg.max_batch_size}")
        if self._rows + request.rows > cfg.max_queue_rows:
            return Admission(False, f"queue is full ({self._rows} rows waiting)")
        if request.deadline_s != NO_DEADLINE:
            self.estimator.age(now)
            finish = self.predict_finish(request.rows, request.deadline_s, now, request.priority)
            if finish > request.deadline_s and not (probe and self._probe(request, now)):
                late_ms = (finish - request.deadline_s) * 1e3
                return Admission(
                    False,
                    f"deadline cannot be met: predicted completion is {late_ms:.1f} ms past the deadline",
                    deadline=True,
                )
        request.seq = next(self._seq)
        heapq.heappush(self._heap, (request.priority, request.deadline_s, request.seq, request))
        self._rows += request.rows
        if request.deadline_s > self._latest_deadline:
            self._latest_deadline = request.deadline_s
        if request.priority > self._lowest_priority:
            self._lowest_priority = request.priority
        return ADMITTED

    def refuses_busy(self, rows: int, deadline_s: float, now: float, priority: int = 0) -> bool:
        """A request of `rows` would be refused for its deadline because of the work ahead of
        it (batches are running, so no probe applies): cheap to ask before decoding it."""
        return bool(self._busy_until) and self.predict_finish(rows, deadline_s, now, priority) > deadline_s

    def next_batch(self, now: float) -> Batch[P] | None:
        """Called when an instance is free. None = nothing to do yet (see wake_at)."""
        self.estimator.age(now)
        start = self._free_at(now)
        expired = self._expire(start)
        if not self._heap:
            return Batch([], expired) if expired else None
        if not self._ready(now):
            return Batch([], expired) if expired else None
        take: list[QueuedRequest[P]] = []
        rows = 0
        max_rows = self.config.max_batch_size
        while self._heap and rows + self._heap[0][3].rows <= max_rows:
            req = heapq.heappop(self._heap)[3]
            if req.cancelled:
                self._rows -= req.rows
                continue
            take.append(req)
            rows += req.rows
        if not take:
            return Batch([], expired) if expired else None
        # Shrink the batch until its predicted latency fits the tightest deadline in it (the
        # first, within one level); what is put back (the last in order) waits for the next batch.
        predicted = self.estimator.predict_s(rows)
        while len(take) > 1 and start + predicted > min(r.deadline_s for r in take):
            back = take.pop()
            rows -= back.rows
            heapq.heappush(self._heap, (back.priority, back.deadline_s, back.seq, back))
            predicted = self.estimator.predict_s(rows)
        self._rows -= rows
        if not self._heap:
            self._latest_deadline = -math.inf
            self._lowest_priority = 0
        self._busy_until.append(start + predicted)
        self._busy_until.sort()
        return Batch(take, expired, predicted)

    def wake_at(self, now: float) -> float | None:
        """When next_batch may have something new to say, if the queue waits for more rows."""
        if not self._heap:
            return None
        oldest = min(r.arrival_s for _, _, _, r in self._heap)
        t = oldest + self.config.max_queue_delay_s
        earliest = self._heap[0][1] if self._lowest_priority == 0 else min(d for _, d, _, _ in self._heap)
        if earliest != NO_DEADLINE:
            t = min(t, earliest - self.estimator.predict_s(self.config.max_batch_size))
        return max(t, now)

    def completed(self, batch: Batch[P], latency_s: float | None, now: float) -> None:
        """The batch finished after latency_s (None: it failed, nothing was measured)."""
        if batch.requests:
            if latency_s is not None:
                self.estimator.observe(batch.rows, latency_s, now)
            if self._busy_until:
                self._busy_until.pop(0)

    def backlog_s(self) -> float:
        """Predicted time to run everything queued, one batch after another."""
        return self._work_s(self._rows)

    def drain(self) -> list[QueuedRequest[P]]:
        """Remove and return everything queued (shutdown or unload)."""
        out = [r for _, _, _, r in sorted(self._heap, key=lambda e: e[:3])]
        self._heap.clear()
        self._rows = 0
        self._latest_deadline = -math.inf
        self._lowest_priority = 0
        return out

    # ---- internals -----------------------------------------------------------------------
    def _ready(self, now: float) -> bool:
        cfg = self.config
        if self._rows >= cfg.max_batch_size or cfg.max_queue_delay_s <= 0:
            return True
        if self._rows in cfg.preferred_batch_sizes or (
            cfg.preferred_batch_sizes and self._rows >= max(cfg.preferred_batch_sizes)
        ):
            return True
        wake = self.wake_at(now)
        return wake is None or wake <= now

    def _expire(self, now: float) -> list[QueuedRequest[P]]:
        """Pop requests at the head whose deadline is out of reach even alone (a probe runs
        anyway), and answered ones (cancelled) that need nothing more."""
        expired: list[QueuedRequest[P]] = []
        one = self.estimator.predict_s(1)
        heap = self._heap
        while heap and (heap[0][3].cancelled or (heap[0][1] < now + one and not heap[0][3].probe)):
            req = heapq.heappop(heap)[3]
            self._rows -= req.rows
            if not req.cancelled:
                expired.append(req)
        return expired

    def _probe(self, request: QueuedRequest[P], now: float) -> bool:
        """Admit a predicted-late request to re-measure, at most once per probe interval and only
        when nothing is queued or running and no batch was measured for that long: an estimate
        that nothing corrects (every request rejected, so nothing runs) must not lock the model
        out."""
        interval = self.config.probe_interval_s
        if interval <= 0 or self._busy_until or self._heap or now - self._last_probe_s < interval:
            return False
        if now - self.estimator.last_observed_s < interval:
            return False
        self._last_probe_s = now
        request.probe = True
        return True

    def _free_at(self, now: float) -> float:
        """When the next batch can start: now while an instance is free, else when the first
        instance to get through what it holds (its running batch and any queued behind it) does."""
        busy = self._busy_until  # kept sorted
        instances = max(1, self.config.instances)
        return now if len(busy) < instances else max(now, busy[len(busy) - instances])

    def _work_s(self, rows: int) -> float:
        full_batches, rest = divmod(rows, self.config.max_batch_size)
        work = full_batches * self.estimator.predict_s(self.config.max_batch_size) if full_batches else 0.0
        if rest:
            work += self.estimator.predict_s(rest)
        return work

    def predict_finish(self, rows: int, deadline_s: float, now: float, priority: int = 0) -> float:
        """When `rows` with this deadline and priority level would finish if admitted now: the
        work ahead of it (higher levels, then earlier deadlines of its own), spread over the
        instances, after the batches already running."""
        if deadline_s >= self._latest_deadline and priority >= self._lowest_priority:
            ahead = rows + self._rows  # the common case (one SLO, one level): behind everything
        else:
            ahead = rows + sum(r.rows for p, d, _, r in self._heap if (p, d) <= (priority, deadline_s))
        return self._free_at(now) + self._work_s(ahead) / max(1, self.config.instances)
