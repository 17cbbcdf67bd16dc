"""Open-loop load that records (kind, scheduled, sent, answered, status) for EVERY request.

Requests leave at their scheduled times on keep-alive connections (a new one is opened when none
is idle), so a slow server never slows the arrivals. Load stays bounded: beyond `max_outstanding`
requests in flight an arrival is recorded as NOT_SENT (the client's limit, not the server's
answer); a request with no answer after `client_timeout_s` is UNANSWERED and its connection closed.
Optional retrying clients re-send at once on 503/429, within a per-request and a total bound.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np

import loadgen
from common import Kind

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
    """Replays one trace against one server."""

    def __init__(self, port: int, kinds: list[Kind], max_outstanding: int, client_timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, seed: int = 0) -> None:
        self.pool = loadgen.ConnectionPool("127.0.0.1", port)
        self.kinds, self.max_outstanding, self.client_timeout_s = kinds, max_outstanding, client_timeout_s
        self.retry = retry
        self.rng = np.random.default_rng(seed)
        self.outstanding = 0
        self.retries_left = retry.total if retry else 0
        self.rec = Records()
        self.t0 = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def _send(self, idx: int) -> None:
        rec = self.rec
        if self.outstanding >= self.max_outstanding:
            return  # stays NOT_SENT
        self.outstanding += 1
        conn = None
        try:
            conn = await self.pool.acquire()
            rec.sent[idx] = self.now()
            status = await asyncio.wait_for(conn.send(self.kinds[rec.kind[idx]].raw), self.client_timeout_s)
            rec.done[idx] = self.now()
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
        attempt = 0
        while retrying and self.rec.status[idx] in REJECTED and self.retry and attempt < self.retry.per_request:
            if self.retries_left <= 0:
                return
            self.retries_left -= 1
            attempt += 1
            idx = self.rec.add(kind, req, attempt, self.now())
            await self._send(idx)

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


async def capacity(port: int, kinds: list[Kind], in_flight: int, duration_s: float, warmup_s: float = 1.0) -> list[float]:
    """Closed loop, `in_flight` requests per kind, all kinds at once: answers 200 per second per kind."""
    async def one(kind: Kind) -> float:
        raw = kind.raw
        calls = await loadgen.http_callers("127.0.0.1", port, raw, in_flight)
        res = await loadgen.closed_loop(calls, duration_s, warmup_s)
        return len(res.latencies_s) / duration_s

    return list(await asyncio.gather(*(one(k) for k in kinds)))
