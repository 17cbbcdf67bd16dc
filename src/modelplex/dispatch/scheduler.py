"""One slice's dispatch policy (pure: no clock, no I/O; `now` is passed in).

A slice runs one or several models that take turns (a duty cycle), on one or several worker
processes; a slice of one model may hand its process the next batch while the current one runs
(`depth`), so the worker never waits for the frontend between batches. The SliceScheduler holds
a deadline-aware queue per model (BatchQueue), the turn order (DutyCycleScheduler) and the
number of batches running, and decides what runs next. The live
runtime and the simulator drive it the same way -- decide, execute, feed back:

    admission = sched.submit(model, request, now)
    while (d := sched.schedule(now)) is not None:
        answer d.expired as rejected; if d.requests: run the batch, later sched.completed(d, s, now2)
    when = sched.wake_at(now)            # ask schedule() again then, if nothing else happens first
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from modelplex.core.model import BatchingConfig
from modelplex.dispatch.batching import NO_DEADLINE, Admission, Batch, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.dispatch.dutycycle import DutyCycleScheduler
from modelplex.dispatch.latency import LatencyEstimator

P = TypeVar("P")

MIN_WAKE_S = 1e-9  # a wake-up is always strictly later than now (no busy loop on ties)


@dataclass(frozen=True)
class Lane:
    """One model on a slice: its queue settings and, optionally, a latency prior."""

    model: str  # model name
    policy: BatchPolicyConfig  # batch limit, queue delay, preferred sizes
    limit: int = 0  # the model's own largest batch (set_batch never exceeds it; 0 = policy's)
    estimator: LatencyEstimator | None = None  # prediction source (None: learn from measurements)


@dataclass(slots=True)
class Dispatch(Generic[P]):
    """What schedule() decided: a batch of one model to run now, and requests that expired."""

    model: str  # model whose batch runs ("" when the dispatch only carries expirations)
    requests: list[QueuedRequest[P]]  # to run now, in deadline order (empty: nothing to run)
    expired: list[tuple[str, QueuedRequest[P]]] = field(default_factory=list)  # (model, request) to reject
    predicted_s: float = 0.0  # predicted latency of the batch
    started_s: float = 0.0  # when it was dispatched
    batch: Batch[P] | None = None  # the queue's own record of the batch (fed back on completion)

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.requests)


class SliceScheduler(Generic[P]):
    """Queues, turns and batch formation of one slice."""

    def __init__(
        self, slice_id: str, lanes: Sequence[Lane], duty_cycle_ms: float = 0.0, processes: int = 1, depth: int = 1,
    ) -> None:
        if not lanes:
            raise ValueError(f"slice {slice_id} has no models")
        if depth > 1 and len(lanes) > 1:
            raise ValueError(f"slice {slice_id}: a depth of {depth} needs a slice of one model, it has {len(lanes)}")
        self.slice_id = slice_id  # the slice this schedules
        self.processes = max(1, processes)  # batches that may run at once
        self.depth = max(1, depth)  # batches each process holds at once: the one it runs, the rest queued behind it
        self.models = [lane.model for lane in lanes]  # in turn order
        self._limits = {lane.model: max(1, lane.limit or lane.policy.max_batch_size) for lane in lanes}
        self._queues: list[BatchQueue[P]] = [
            BatchQueue(replace(lane.policy, instances=self.processes), lane.estimator) for lane in lanes
        ]
        self._index = {m: i for i, m in enumerate(self.models)}
        self.turns = DutyCycleScheduler(self.models, duty_cycle_ms, self.processes * self.depth)
        self._refusal: str | None = None  # why submit refuses everything now (None: accepting)
        self._down = False  # the worker is being replaced: still queues, but routed to last
        self.accepting = True  # no refusal in force, worker up (an attribute: the router reads it per request)

    # ---- state ---------------------------------------------------------------------------
    def queue(self, model: str) -> BatchQueue[P]:
        return self._queues[self._index[model]]

    def batch_size(self, model: str) -> int:
        return self.queue(model).config.max_batch_size

    @property
    def running(self) -> int:
        return self.turns.running

    @property
    def idle(self) -> bool:
        return self.turns.running == 0 and all(len(q) == 0 for q in self._queues)

    def refuse(self, reason: str | None) -> None:
        """Refuse new requests with `reason` (a stopping or failed slice); None accepts again."""
        self._refusal = reason
        self.accepting = reason is None and not self._down

    def set_down(self, down: bool) -> None:
        """The worker is down (being replaced): requests still queue here for it, but the
        router sends them to the model's other slices first."""
        self._down = down
        self.accepting = self._refusal is None and not down

    def set_batch(self, model: str, batch: int) -> None:
        """Run `model` at batches of at most `batch` rows from now on (bounded by the model's own)."""
        q = self.queue(model)
        q.config = replace(q.config, max_batch_size=max(1, min(batch, self._limits[model])))

    # ---- policy --------------------------------------------------------------------------
    def submit(self, model: str, request: QueuedRequest[P], now: float, probe: bool = False) -> Admission:
        if self._refusal is not None:
            return Admission(False, self._refusal)
        return self.queue(model).submit(request, now, probe)

    def schedule(self, now: float) -> Dispatch[P] | None:
        """Offer a free slot to the models in turn; the first batch one forms runs. Requests
        whose deadline became unreachable come back as `expired`. None: nothing to do now."""
        expired: list[tuple[str, QueuedRequest[P]]] = []
        for index in self.turns.candidates(now):
            model, q = self.models[index], self._queues[index]
            while True:
                batch = q.next_batch(now)
                if batch is None:
                    break
                expired.extend((model, r) for r in batch.expired)
                if batch.requests:
                    self.turns.started(index, now)
                    return Dispatch(model, batch.requests, expired, batch.predicted_s, now, batch)
                if not (batch.expired and len(q)):
                    break  # expiring may have made the rest ready: ask again, else next model
        return Dispatch("", [], expired, 0.0, now) if expired else None

    def completed(self, dispatch: Dispatch[P], latency_s: float | None, now: float) -> None:
        """The batch finished after `latency_s` (None: it failed, nothing was measured)."""
        self.turns.finished(now)
        if dispatch.batch is not None:
            self.queue(dispatch.model).completed(dispatch.batch, latency_s, now)

    def wake_at(self, now: float) -> float | None:
        """When schedule() may have something new to say if nothing else happens first."""
        if self.turns.busy:
            return None  # a completion comes first
        wakes = [w for q in self._queues if len(q) and (w := q.wake_at(now)) is not None]
        return max(min(wakes), now + MIN_WAKE_S) if wakes else None

    def refuses_busy(self, model: str, rows: int, deadline_s: float, now: float) -> bool:
        """Would refuse such a request now for the work ahead (see BatchQueue.refuses_busy); a
        slice refusing everything says no here (its own refusal names the reason)."""
        return self._refusal is None and self.queue(model).refuses_busy(rows, deadline_s, now)

    def predicted_finish_s(self, model: str, rows: int, now: float) -> float:
        """When a request of `rows` without a deadline would finish here (for routing)."""
        own = self.queue(model)
        return own.predict_finish(rows, NO_DEADLINE, now) + sum(q.backlog_s() for q in self._queues if q is not own)

    def queued_rows(self, model: str) -> int:
        return self.queue(model).queued_rows

    def drain(self) -> list[tuple[str, QueuedRequest[P]]]:
        """Remove and return everything queued (shutdown, or a worker that cannot come back)."""
        return [(m, r) for m, q in zip(self.models, self._queues) for r in q.drain()]


def make_lane(
    model: str,
    planned_batch: int | None,
    batching: BatchingConfig | None,
    prior_s: Callable[[int], float] | None = None,
    default_delay_s: float = 0.0,
) -> Lane:
    """A model's lane on a slice, the same way for both drivers: the model's queue settings
    (queue delay, preferred sizes, largest batch), at most the planned batch, and a latency
    prior (a profile's prediction) until batches are measured. Without the model's settings
    (a simulation from profiles only) the planned batch and `default_delay_s` apply."""
    top = max(1, batching.max_batch_size) if batching is not None else max(1, planned_batch or 1)
    rows = min(top, planned_batch) if planned_batch else top
    policy = BatchPolicyConfig(
        max_batch_size=max(1, rows),
        max_queue_delay_s=batching.max_queue_delay_us / 1e6 if batching is not None else default_delay_s,
        preferred_batch_sizes=batching.preferred_batch_sizes if batching is not None else (),
    )
    return Lane(model, policy, top, LatencyEstimator(prior_s=prior_s))
