"""The path of one request through the runtime: admission (queue bytes, the deadline, the
server's longest wait), routing to a slice, and an answer by the deadline at the latest --
its result, or an error while it waits, runs, or its worker is replaced; once more on another
slice when its worker was lost. A request whose client left leaves its queue."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn, Protocol

from modelplex.core.errors import DeadlineError, UnavailableError, WorkerLostError
from modelplex.dispatch.batching import NO_DEADLINE, QueuedRequest
from modelplex.dispatch.deadlines import ANSWER_MARGIN_S, deadline_s, priority_level
from modelplex.serving.books import ModelBook, Pending, Queued
from modelplex.serving.limits import ClientLink, Limits, QueueMemory, request_nbytes
from modelplex.serving.slice_set import SliceSet
from modelplex.serving.types import InferRequest, InferResponse
from modelplex.serving.validate import validate_request

log = logging.getLogger(__name__)


class ArrivalObserver(Protocol):
    """Told of every request that arrives (the re-planning controller)."""

    def observe(self, model: str, now: float, count: int = 1) -> None: ...


class RequestPath:
    """Admits, queues and answers the requests of the models a SliceSet serves."""

    def __init__(self, slices: SliceSet, limits: Limits, arrivals: ArrivalObserver | None) -> None:
        self.slices = slices  # the running slices and routes
        self.clock = slices.clock  # time source
        self.limits = limits  # longest wait, queue bytes
        self.arrivals = arrivals  # told of every arrival, if anyone listens
        self.queue_memory = QueueMemory(limits)  # bytes of requests held now

    def too_busy(self, book: ModelBook) -> bool:
        """Every slice of the model is too far behind to meet a one-row request with its model's
        deadline (see Router.refuses_busy). Cheap: asked before a request is decoded."""
        route = self.slices.routes.get(book.config.model.name)
        now = self.clock.now()
        return route is not None and route.refuses_busy(1, self._deadline({}, book, now)[0], now)

    def refuse_busy(self, book: ModelBook) -> NoReturn:
        """Refuse a request that too_busy() said cannot be served in time, as admission would."""
        model, now = book.config.model.name, self.clock.now()
        slo_ms = book.config.batching.slo_ms
        if self.arrivals is not None:
            self.arrivals.observe(model, now)
        book.rejected(deadline=slo_ms is not None, now=now)
        if slo_ms is None:
            raise self._too_long(model)
        raise DeadlineError(f"model {model}: deadline cannot be met: the queue ahead takes longer than its {slo_ms:g} ms SLO")

    def _deadline(self, parameters: dict[str, object], book: ModelBook, now: float) -> tuple[float, bool]:
        """A request's deadline, and whether it is its own (or its model's SLO) rather than the
        server's longest wait, which bounds a request without one, in admission too."""
        deadline = deadline_s(parameters, book.config.batching.slo_ms, now)
        own = deadline != NO_DEADLINE
        return (deadline if own else now + self.limits.max_wait_s - ANSWER_MARGIN_S), own

    async def run(self, book: ModelBook, request: InferRequest, client: ClientLink | None = None) -> InferResponse:
        """Queue a request and wait for its answer: by its deadline (or the server's longest wait)
        at the latest; once more on another slice if its worker was lost while it ran and the
        deadline allows."""
        rows = validate_request(book.config, request)
        now = self.clock.now()
        batching = book.config.batching
        deadline, own = self._deadline(request.parameters, book, now)
        level = priority_level(request.parameters, batching.priority_levels, batching.default_priority_level)
        if self.arrivals is not None:
            self.arrivals.observe(request.model, now)
        nbytes = request_nbytes(request)
        self.queue_memory.reserve(request.model, nbytes)
        try:
            try:
                return await self._queue(book, request, rows, deadline, own, client, level)
            except WorkerLostError:
                if not self._retry_allowed(request.model, deadline):
                    raise
                log.info("model %s: retrying a request whose worker was lost", request.model)
                return await self._queue(book, request, rows, deadline, own, client, level)
        finally:
            self.queue_memory.release(request.model, nbytes)

    async def _queue(
        self, book: ModelBook, request: InferRequest, rows: int, deadline: float, own: bool, client: ClientLink | None,
        level: int = 0,
    ) -> InferResponse:
        """Route one request to a slice of its model and wait for the answer (`own`: the deadline
        is the request's or its model's SLO, not the server's longest wait)."""
        now = self.clock.now()
        future: asyncio.Future[InferResponse] = asyncio.get_running_loop().create_future()
        queued = QueuedRequest(now, deadline, rows, Pending(request, future, now, own), priority=level)
        route = self.slices.routes.get(request.model)
        if route is None:
            raise UnavailableError(f"model {request.model} is not placed by the current plan")
        routed = route.route(queued, now)
        if routed.slice is None:
            admission = routed.admission
            book.rejected(deadline=admission.deadline and own, now=now)
            if admission.deadline and not own:
                raise self._too_long(request.model)
            message = f"model {request.model}: {admission.reason}"
            raise DeadlineError(message) if admission.deadline else UnavailableError(message)
        self.slices.runner_of(routed.slice).pump()
        timer = self.clock.call_at(deadline, lambda: self._time_out(book, queued))
        if client is not None:
            client.watch(lambda: self._abandon(queued))
        try:
            return await future
        except asyncio.CancelledError:  # the frontend gave up on it (client gone): never run it
            queued.cancelled = True
            raise
        finally:
            timer.cancel()
            if client is not None:
                client.watch(None)

    def _too_long(self, model: str) -> UnavailableError:
        return UnavailableError(f"model {model}: its queue would take longer than the server's longest wait of "
                                f"{self.limits.max_wait_s:g} s (--max-wait-s); try again later")

    def _time_out(self, book: ModelBook, queued: Queued) -> None:
        """A request's deadline (or the longest wait) has come: answer it now, whatever holds it."""
        queued.cancelled = True
        book.fail(queued, book.late(queued, "passed before the answer was ready"), self.clock.now())

    @staticmethod
    def _abandon(queued: Queued) -> None:
        """The client left: drop the request from its queue and stop waiting for it."""
        queued.cancelled = True
        if not queued.payload.future.done():
            queued.payload.future.cancel()

    def _retry_allowed(self, model: str, deadline: float) -> bool:
        """Another slice of the model is up, and the deadline has not passed."""
        route = self.slices.routes.get(model)
        return route is not None and self.clock.now() < deadline and any(s.accepting for s in route.slices)
