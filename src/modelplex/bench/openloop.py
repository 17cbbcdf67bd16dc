"""Open-loop load that records (kind, scheduled, sent, answered, status) for EVERY request.

Requests leave at their scheduled times on keep-alive connections (a new one is opened when none
is idle), so a slow server never slows the arrivals. Load stays bounded: beyond `max_outstanding`
requests in flight an arrival is recorded as NOT_SENT (the client's limit, not the server's
answer); one the client could not send within `late_s` of its scheduled time (its event loop fell
behind) is CLIENT_LATE and not sent; a request with no answer after `client_timeout_s` is
UNANSWERED and its connection closed. Optional retrying clients re-send at once on 503/429,
within a per-request and a total bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelplex.bench.http import ConnectionPool, HttpConn

CLIENT_LATE = -3  # the client fell behind its schedule by more than late_s: never sent
NOT_SENT = -2  # the client's outstanding limit was reached: never sent
UNANSWERED = -1  # no answer within the client timeout
CONN_ERROR = 0  # the connection failed or closed before an answer
REJECTED = (503, 429)  # answers a retrying client re-sends on


@dataclass(frozen=True)
class RetryPolicy:
    """Clients that re-send at once on a rejection."""

    share: float = 0.5  # share of arrivals that come from retrying clients
    per_request: int = 10  # re-sends of one request at most
    total: int = 100_000  # re-sends in the whole run at most


@dataclass
class Records:
    """One row per attempt (first sends and re-sends), times in seconds from the run's start."""

    kind: list[int] = field(default_factory=list)
    request: list[int] = field(default_factory=list)  # the arrival this attempt belongs to
    attempt: list[int] = field(default_factory=list)  # 0 = first send
    sched: list[float] = field(default_factory=list)  # scheduled arrival (re-sends: when re-sent)
    sent: list[float] = field(default_factory=list)  # written to a connection (NaN: not sent)
    done: list[float] = field(default_factory=list)  # answer or failure (NaN: not sent/unanswered)
    status: list[int] = field(default_factory=list)
    messages: dict[int, str] = field(default_factory=dict)  # row -> error message of a non-200 answer
    events: dict[str, float] = field(default_factory=dict)  # injected faults etc., seconds from start
    duration_s: float = 0.0  # the trace's length
    connections_opened: int = 0

    def add(self, kind: int, request: int, attempt: int, sched: float) -> int:
        self.kind.append(kind)
        self.request.append(request)
        self.attempt.append(attempt)
        self.sched.append(sched)
        self.sent.append(float("nan"))
        self.done.append(float("nan"))
        self.status.append(NOT_SENT)
        return len(self.kind) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)) for k in ("kind", "request", "attempt", "sched", "sent", "done", "status")}


class OpenLoop:
    """Replays one trace against one server: `requests[k]` is the pre-encoded request of kind k."""

    def __init__(self, host: str, port: int, requests: Sequence[bytes], max_outstanding: int,
                 client_timeout_s: float = 60.0, retry: RetryPolicy | None = None, seed: int = 0,
                 late_s: float | None = None, keep_messages: bool = False) -> None:
        self.pool = ConnectionPool(host, port)
        self.requests, self.max_outstanding, self.client_timeout_s = list(requests), max_outstanding, client_timeout_s
        self.retry = retry
        self.late_s = late_s  # None: send however late
        self.keep_messages = keep_messages  # keep the error message of each non-200 answer
        self.rng = np.random.default_rng(seed)
        self.outstanding = 0
        self.retries_left = retry.total if retry else 0
        self.rec = Records()
        self.t0 = 0.0
        self.on_done: Callable[[int], None] | None = None  # called with the row of each finished attempt

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def _send(self, idx: int) -> None:
        rec = self.rec
        if self.late_s is not None and self.now() - rec.sched[idx] > self.late_s:
            rec.status[idx] = CLIENT_LATE
            return
        if self.outstanding >= self.max_outstanding:
            return  # stays NOT_SENT
        self.outstanding += 1
        conn: HttpConn | None = None
        try:
            conn = await self.pool.acquire()
            rec.sent[idx] = self.now()
            status = await asyncio.wait_for(conn.send(self.requests[rec.kind[idx]]), self.client_timeout_s)
            rec.done[idx] = self.now()
            if status != 200 and self.keep_messages:
                rec.messages[idx] = conn.error_message()
            self.pool.release(conn)
        except asyncio.TimeoutError:
            status = UNANSWERED
            if conn is not None:
                self.pool.discard(conn)
        except (ConnectionError, OSError):
            status, rec.done[idx] = CONN_ERROR, self.now()
        finally:
            self.outstanding -= 1
        rec.status[idx] = status

    async def _request(self, req: int, kind: int, sched: float, retrying: bool) -> None:
        idx = self.rec.add(kind, req, 0, sched)
        await self._send(idx)
        self._finished(idx)
        attempt = 0
        while retrying and self.rec.status[idx] in REJECTED and self.retry and attempt < self.retry.per_request:
            if self.retries_left <= 0:
                return
            self.retries_left -= 1
            attempt += 1
            idx = self.rec.add(kind, req, attempt, self.now())
            await self._send(idx)
            self._finished(idx)

    def _finished(self, idx: int) -> None:
        if self.on_done is not None:
            self.on_done(idx)

    async def run(self, times_s: np.ndarray, kind_idx: np.ndarray,
                  side: Callable[["OpenLoop"], Awaitable[None]] | None = None, prewarm: int = 32) -> Records:
        """Replay the trace; `side` (fault injection, sampling) runs beside it on the same clock."""
        await self.pool.fill(prewarm)
        retrying = self.rng.random(len(times_s)) < (self.retry.share if self.retry else 0.0)
        self.t0 = time.perf_counter()
        side_task = asyncio.ensure_future(side(self)) if side else None
        live: set[asyncio.Future[None]] = set()  # finished requests are dropped (long runs)
        for i in range(len(times_s)):
            t = float(times_s[i])
            delay = t - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(self._request(i, int(kind_idx[i]), t, bool(retrying[i])))
            live.add(task)
            task.add_done_callback(live.discard)
        if live:
            await asyncio.wait(set(live))  # each attempt is bounded by the client timeout
        if side_task is not None:
            await side_task
        self.rec.duration_s = float(times_s[-1]) if len(times_s) else 0.0
        self.rec.connections_opened = self.pool.opened
        self.pool.close()
        return self.rec
