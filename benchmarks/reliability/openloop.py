"""Open-loop load that records (kind, scheduled, sent, answered, status) for EVERY request; the
engine is modelplex.bench.openloop (shared with `modelplex bench`), fed this folder's request kinds.

Requests leave at their scheduled times on keep-alive connections (a new one is opened when none
is idle), so a slow server never slows the arrivals. Load stays bounded: beyond `max_outstanding`
requests in flight an arrival is recorded as NOT_SENT (the client's limit, not the server's
answer); a request with no answer after `client_timeout_s` is UNANSWERED and its connection closed.
Optional retrying clients re-send at once on 503/429, within a per-request and a total bound.
"""

from __future__ import annotations

import asyncio

import loadgen
from common import Kind
from modelplex.bench.openloop import CONN_ERROR, NOT_SENT, REJECTED, UNANSWERED, Records, RetryPolicy
from modelplex.bench.openloop import OpenLoop as _PackageOpenLoop


__all__ = ["CONN_ERROR", "NOT_SENT", "REJECTED", "UNANSWERED", "OpenLoop", "Records", "RetryPolicy", "capacity"]


class OpenLoop(_PackageOpenLoop):
    """The package's open loop on 127.0.0.1:`port`, fed the reliability scripts' request kinds."""

    def __init__(self, port: int, kinds: list[Kind], max_outstanding: int, client_timeout_s: float = 60.0,
                 retry: RetryPolicy | None = None, seed: int = 0) -> None:
        super().__init__("127.0.0.1", port, [k.raw for k in kinds], max_outstanding, client_timeout_s, retry, seed)
        self.kinds = kinds


async def capacity(port: int, kinds: list[Kind], in_flight: int, duration_s: float, warmup_s: float = 1.0) -> list[float]:
    """Closed loop, `in_flight` requests per kind, all kinds at once: answers 200 per second per kind."""
    async def one(kind: Kind) -> float:
        raw = kind.raw
        calls = await loadgen.http_callers("127.0.0.1", port, raw, in_flight)
        res = await loadgen.closed_loop(calls, duration_s, warmup_s)
        return len(res.latencies_s) / duration_s

    return list(await asyncio.gather(*(one(k) for k in kinds)))
