"""uvicorn's httptools protocol with the time limits a server on a shared port needs, and a
link from each request to its connection so a request whose client left is dropped.

- A connection that sends nothing is closed after the keep-alive timeout (uvicorn arms that
  timer only after a first response).
- Request headers must arrive within `header_timeout_s` of their first byte, and the body within
  `body_timeout_s` of the headers: a slow client cannot hold a connection (and its memory)
  open without ever finishing (answered 408, then closed).
- When a connection closes before its response, the request's ClientLink is told (see
  serving.limits): the data plane drops it from its queue.
- The connection's transport can hold writes (`HeldWrites`, in the scope under `WRITES_KEY`):
  the infer route sends its status line, headers and body in one write. While the frontend has
  a core of its own (left by default, or by the plan being served), the answers of one loop turn go out together in the next (`Burst`), so
  clients are woken once per burst rather than once per answer; where it shares its cores with
  workers, loop turns are slower and each answer is written at once (measured both ways:
  benchmarks/README.md, "Data path").
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from modelplex.serving.limits import ClientLink

log = logging.getLogger(__name__)

CLIENT_KEY = "modelplex.client"  # the scope key of a request's ClientLink
WRITES_KEY = "modelplex.writes"  # the scope key of its connection's HeldWrites
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0
SWEEP_S = 0.5  # how often connections are checked against their limits (no timer per request)

_swept: list[set[Any]] = []  # the connection sets (one per server) a sweep looks after


class Burst:
    """The answers written in one turn of the event loop, sent together at the start of the next:
    a client process is woken while it still reads the first of them, not once per answer (each
    wake-up of another process costs both sides CPU: benchmarks/datapath/wakeup.py). One per
    event loop."""

    def __init__(self) -> None:
        self._items: list[tuple[HeldWrites, bytes]] = []

    def add(self, writes: HeldWrites, data: bytes) -> None:
        if not self._items:
            asyncio.get_running_loop().call_soon(self.flush)
        self._items.append((writes, data))

    def flush(self) -> None:
        items, self._items = self._items, []
        for writes, data in items:
            writes.deliver(data)


_bursts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Burst] = weakref.WeakKeyDictionary()


def burst_of(loop: asyncio.AbstractEventLoop) -> Burst:
    """The loop's Burst (made on first use, gone with the loop)."""
    burst = _bursts.get(loop)
    if burst is None:
        burst = _bursts[loop] = Burst()
    return burst


class HeldWrites(asyncio.Transport):
    """A connection's transport whose writes can be held (`hold`) and then sent as one (`send`),
    with the loop turn's other answers when given the loop's Burst and `use_burst()` says so at
    the time (the frontend's cores change with the plan), else at once; later writes keep their
    order."""

    def __init__(self, transport: asyncio.Transport, burst: Burst | None, use_burst: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self._transport = transport
        self._burst = burst
        self._use_burst = use_burst
        self._held: list[bytes] | None = None  # writes held since hold(); None: not holding
        self._queued = 0  # writes waiting in the burst

    def hold(self) -> None:
        """Hold writes until send()."""
        if self._held is None:
            self._held = []

    def send(self) -> None:
        """Write what was held, as one write (through the burst, if any); stop holding."""
        held, self._held = self._held, None
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        if self._burst is not None and (self._queued or self._use_burst()):
            self._queue(self._burst, data)  # (behind what waits in the burst, if it was just switched off)
        else:
            self._transport.write(data)

    def deliver(self, data: bytes) -> None:
        """Write one queued piece (called by the burst)."""
        self._queued -= 1
        if not self._transport.is_closing():
            self._transport.write(data)

    def _queue(self, burst: Burst, data: bytes) -> None:
        self._queued += 1
        burst.add(self, data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            self._held.append(bytes(data))
        elif self._queued and self._burst is not None:
            self._queue(self._burst, bytes(data))  # behind what waits in the burst
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def close(self) -> None:
        self.send()
        if self._queued and self._burst is not None:
            self._burst.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.send()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class BoundedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus header/body time limits and client links (the class is given to
    uvicorn as `http=`; the limits are class attributes set by `bounded_protocol`)."""

    header_timeout_s = HEADER_TIMEOUT_S
    body_timeout_s = BODY_TIMEOUT_S
    burst_answers: Callable[[], bool] = staticmethod(lambda: False)  # write a loop turn's answers together in the next (Burst)?

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit_at = math.inf  # loop time by which the current stage must be received
        self._limit = ("", 0.0)  # that stage and its time limit, for the message

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldWrites(transport, burst_of(asyncio.get_running_loop()), self.burst_answers))
        # a connection that never sends a request is closed like an idle keep-alive one
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        if not any(c is self.connections for c in _swept):
            _swept.append(self.connections)
            self.loop.call_later(SWEEP_S, _sweep, self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_limit()
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and not cycle.response_complete:
            link = cycle.scope.get(CLIENT_KEY)
            if isinstance(link, ClientLink):
                link.gone()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CLIENT_KEY] = ClientLink()  # type: ignore[literal-required]
        self.scope[WRITES_KEY] = self.transport  # type: ignore[literal-required]
        self._arm(self.header_timeout_s, "request headers")

    def on_headers_complete(self) -> None:
        self._cancel_limit()
        super().on_headers_complete()
        self._arm(self.body_timeout_s, "request body")

    def on_message_complete(self) -> None:
        self._cancel_limit()
        super().on_message_complete()

    def _arm(self, seconds: float, what: str) -> None:
        self._limit_at = self.loop.time() + seconds
        self._limit = (what, seconds)

    def _cancel_limit(self) -> None:
        self._limit_at = math.inf

    def check_limit(self, now: float) -> None:
        """Cut the connection off if the stage it is in is overdue (called by the sweep)."""
        if now > self._limit_at:
            self._limit_at = math.inf
            self._too_slow(*self._limit)

    def _too_slow(self, what: str, seconds: float) -> None:
        if self.transport.is_closing():
            return
        log.info("closing a connection from %s: %s not received within %g s", self.client, what, seconds)
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            body = orjson.dumps({"error": f"{what} not received within {seconds:g} s"})
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Check every connection of one server against its time limit, twice a second."""
    now = loop.time()
    for conn in list(connections):
        if isinstance(conn, BoundedHttpProtocol):
            conn.check_limit(now)
    loop.call_later(SWEEP_S, _sweep, loop, connections)


def bounded_protocol(header_timeout_s: float, body_timeout_s: float,
                     burst_answers: Callable[[], bool] = lambda: False) -> type[BoundedHttpProtocol]:
    """The protocol class with these limits and way of writing answers (`burst_answers()`, asked
    at each answer; uvicorn builds one instance per connection)."""
    return type(
        "BoundedHttpProtocol",
        (BoundedHttpProtocol,),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "burst_answers": staticmethod(burst_answers)},
    )
