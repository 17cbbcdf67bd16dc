"""One HTTP/2 connection of the gRPC edge, on the event loop (RFC 9113): frames in, streams handed
to the call layer, answers out under the peer's flow control.

What it keeps to: the client preface and SETTINGS; header blocks across CONTINUATION, decoded
by `hpack`; PING answered; WINDOW_UPDATE both ways (the peer's windows bound what we send; ours
are opened again as the call layer takes the bytes); RST_STREAM and GOAWAY both ways; at most
`max_streams` open streams (beyond: REFUSED_STREAM). A frame it cannot go on after ends the
connection with GOAWAY and the error's code. Bounds: the preface and SETTINGS must arrive within
`handshake_s`; a connection without calls for `idle_s` is closed; one silent for a `keepalive_s`
period is pinged, and closed if it stays silent for another.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol, cast

import hpack

from modelplex.serving import h2_frames as h2

log = logging.getLogger(__name__)

STREAM_WINDOW = 1 << 20  # what each stream may send us before we take its bytes
CONNECTION_WINDOW = 16 << 20  # what the connection may send us before we take its bytes
MAX_HEADER_LIST = 64 << 10  # decoded request headers, at most
_EMPTY = memoryview(b"")


class StreamHandler(Protocol):
    """The call layer's side of one stream."""

    def data(self, chunk: memoryview, end: bool) -> None:
        """Request bytes, in order; `end` when the client has sent all. Copy what you keep."""

    def reset(self) -> None:
        """The client cancelled the stream, or the connection is gone."""


OpenStream = Callable[["H2Connection", int, list[tuple[bytes, bytes]]], StreamHandler]


@dataclass(frozen=True)
class H2Limits:
    max_streams: int = 1000  # open streams per connection
    handshake_s: float = 10.0  # the preface and first SETTINGS must arrive within this
    idle_s: float = 300.0  # a connection without calls this long is closed
    keepalive_s: float = 60.0  # a connection silent this long is pinged; twice this, closed


@dataclass
class _Stream:
    handler: StreamHandler | None
    window: int  # what we may still send on it
    out: bytes = b""  # answer bytes the windows have held back
    tail: bytes | None = None  # the trailers that end it, once the answer is whole
    unacked: int = 0  # bytes taken since its window was last opened
    remote_closed: bool = False


@dataclass
class _Continuation:
    stream: int
    flags: int
    block: bytearray = field(default_factory=bytearray)


class H2Connection(asyncio.Protocol):
    def __init__(self, open_stream: OpenStream, limits: H2Limits, gone: Callable[[H2Connection], None]) -> None:
        self.open_stream = open_stream
        self.limits = limits
        self.gone = gone  # told when the connection closes
        self.transport: asyncio.Transport | None = None
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self.streams: dict[int, _Stream] = {}
        self.blocked: set[int] = set()  # streams waiting for window
        self.pending = b""  # bytes of a frame not yet whole
        self.preface = False
        self.settled = False  # the client's first SETTINGS arrived
        self.continuing: _Continuation | None = None
        self.last_stream = 0
        self.send_window = h2.DEFAULT_WINDOW  # connection-level, for what we send
        self.peer_stream_window = h2.DEFAULT_WINDOW
        self.peer_max_frame = h2.DEFAULT_MAX_FRAME
        self.unacked = 0  # bytes taken since the connection's window was last opened
        self.closing = False  # GOAWAY sent or received: no new streams
        self.reads = 0  # data_received calls, for keepalive
        self.reads_at_tick = 0
        self.ping_due = False
        self.timers: list[asyncio.TimerHandle] = []  # the handshake's, the keepalive's
        self.idle_since = 0.0
        self.table_shrunk = False  # the client lowered SETTINGS_HEADER_TABLE_SIZE since our last block

    # ------------------------------------------------------------------ transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's
        ours = {h2.SETTINGS_MAX_CONCURRENT_STREAMS: self.limits.max_streams, h2.SETTINGS_ENABLE_PUSH: 0,
                h2.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW, h2.SETTINGS_MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST}
        self.transport.write(h2.settings(ours) + h2.window_update(0, CONNECTION_WINDOW - h2.DEFAULT_WINDOW))
        loop = asyncio.get_running_loop()
        self.idle_since = loop.time()
        self.timers = [loop.call_later(self.limits.handshake_s, self._handshake_due), loop.call_later(self.limits.keepalive_s, self._tick)]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for timer in self.timers:
            timer.cancel()
        streams, self.streams = self.streams, {}
        for st in streams.values():
            if st.handler is not None:
                st.handler.reset()
        self.gone(self)

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        if self.pending:
            data = self.pending + data
        pos = 0
        if not self.preface:
            if len(data) < len(h2.PREFACE) and h2.PREFACE.startswith(data):
                self.pending = data
                return
            if not data.startswith(h2.PREFACE):
                return self._fail(h2.H2Error(h2.PROTOCOL_ERROR, "not an HTTP/2 client preface (this port speaks gRPC)"))
            self.preface, pos = True, len(h2.PREFACE)
        out = bytearray()
        try:
            frames, pos = h2.split_frames(data, pos)
            for kind, flags, stream, payload in frames:
                self._frame(kind, flags, stream, payload, out)
        except h2.H2Error as exc:
            return self._fail(exc)
        self.pending = data[pos:]
        if self.unacked >= CONNECTION_WINDOW // 2:
            out += h2.window_update(0, self.unacked)
            self.unacked = 0
        if out and self.transport is not None:
            self.transport.write(out)
        self._close_if_done()

    # ------------------------------------------------------------------ frames in
    def _frame(self, kind: int, flags: int, stream: int, payload: memoryview, out: bytearray) -> None:
        if self.continuing is not None and kind != h2.CONTINUATION:
            raise h2.H2Error(h2.PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == h2.DATA:
            self._data(flags, stream, payload, out)
        elif kind == h2.HEADERS:
            if stream == 0 or not stream % 2:
                raise h2.H2Error(h2.PROTOCOL_ERROR, f"HEADERS on stream {stream} (clients open odd streams)")
            block = h2.unpad(flags, payload, "HEADERS")
            if flags & h2.END_HEADERS:
                self._header_block(stream, flags, bytes(block), out)
            else:
                self.continuing = _Continuation(stream, flags, bytearray(block))
        elif kind == h2.CONTINUATION:
            self._continuation(flags, stream, payload, out)
        elif kind == h2.SETTINGS:
            self._settings(flags, payload, out)
        elif kind == h2.WINDOW_UPDATE:
            self._window_update(stream, h2.read_u32(payload, "WINDOW_UPDATE"), out)
        elif kind == h2.PING:
            if len(payload) != 8:
                raise h2.H2Error(h2.FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
            if flags & h2.ACK:
                self.ping_due = False
            else:
                out += h2.frame(h2.PING, h2.ACK, 0, payload)
        elif kind == h2.RST_STREAM:
            h2.read_u32(payload, "RST_STREAM")
            self._reset(stream)
        elif kind == h2.GOAWAY:
            self.closing = True  # closed once the streams are answered (data_received's end)
        elif kind == h2.PUSH_PROMISE:
            raise h2.H2Error(h2.PROTOCOL_ERROR, "clients may not push")
        # PRIORITY and unknown types are ignored, as RFC 9113 asks

    def _continuation(self, flags: int, stream: int, payload: memoryview, out: bytearray) -> None:
        cont = self.continuing
        if cont is None or cont.stream != stream:
            raise h2.H2Error(h2.PROTOCOL_ERROR, "CONTINUATION without the HEADERS it continues")
        cont.block += payload
        if len(cont.block) > MAX_HEADER_LIST:
            raise h2.H2Error(h2.PROTOCOL_ERROR, f"header block over {MAX_HEADER_LIST} bytes")
        if flags & h2.END_HEADERS:
            self.continuing = None
            self._header_block(stream, cont.flags, bytes(cont.block), out)

    def _header_block(self, stream: int, flags: int, block: bytes, out: bytearray) -> None:
        try:
            fields = self.decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise h2.H2Error(h2.COMPRESSION_ERROR, f"header block not decodable: {exc}") from None
        st = self.streams.get(stream)
        if st is not None:  # trailers from the client: its side ends
            if not flags & h2.END_STREAM:
                raise h2.H2Error(h2.PROTOCOL_ERROR, f"second HEADERS on stream {stream} without END_STREAM")
            self._data_to(st, _EMPTY, True)
            return
        if stream <= self.last_stream:
            raise h2.H2Error(h2.PROTOCOL_ERROR, f"HEADERS on closed stream {stream}")
        self.last_stream = stream
        if self.closing or len(self.streams) >= self.limits.max_streams:
            out += h2.rst_stream(stream, h2.REFUSED_STREAM)
            return
        ended = bool(flags & h2.END_STREAM)  # the client sent all it will (no request body)
        st = self.streams[stream] = _Stream(None, self.peer_stream_window, remote_closed=ended)
        st.handler = self.open_stream(self, stream, [(bytes(k), bytes(v)) for k, v in fields])
        if ended and stream in self.streams:
            self._data_to(st, _EMPTY, True)

    def _data(self, flags: int, stream: int, payload: memoryview, out: bytearray) -> None:
        self.unacked += len(payload)
        st = self.streams.get(stream)
        if st is None:
            if stream == 0 or stream > self.last_stream:
                raise h2.H2Error(h2.PROTOCOL_ERROR, f"DATA on stream {stream}, never opened")
            return  # a stream we have answered or the client reset: its bytes are dropped
        end = bool(flags & h2.END_STREAM)
        if not end:
            st.unacked += len(payload)
            if st.unacked >= STREAM_WINDOW // 2:
                out += h2.window_update(stream, st.unacked)
                st.unacked = 0
        self._data_to(st, h2.unpad(flags, payload, "DATA") if flags & h2.PADDED else payload, end)

    def _data_to(self, st: _Stream, chunk: memoryview, end: bool) -> None:
        if end:
            st.remote_closed = True
        if st.handler is not None:
            st.handler.data(chunk, end)

    def _settings(self, flags: int, payload: memoryview, out: bytearray) -> None:
        if flags & h2.ACK:
            return
        for key, value in h2.read_settings(payload):
            if key == h2.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > h2.MAX_WINDOW:
                    raise h2.H2Error(h2.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value} over 2^31-1")
                for st in self.streams.values():
                    st.window += value - self.peer_stream_window
                self.peer_stream_window = value
            elif key == h2.SETTINGS_HEADER_TABLE_SIZE:
                self.table_shrunk = self.table_shrunk or value < h2.DEFAULT_TABLE_SIZE
            elif key == h2.SETTINGS_MAX_FRAME_SIZE:
                if not h2.DEFAULT_MAX_FRAME <= value < 1 << 24:
                    raise h2.H2Error(h2.PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                self.peer_max_frame = value
        self.settled = True
        out += h2.frame(h2.SETTINGS, h2.ACK, 0)
        self._drain_blocked(out)

    def _window_update(self, stream: int, increment: int, out: bytearray) -> None:
        if stream == 0:
            if not increment:
                raise h2.H2Error(h2.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            self.send_window += increment
            if self.send_window > h2.MAX_WINDOW:
                raise h2.H2Error(h2.FLOW_CONTROL_ERROR, "connection window over 2^31-1")
        else:
            st = self.streams.get(stream)
            if st is None:
                return
            st.window += increment
            if not increment or st.window > h2.MAX_WINDOW:
                out += h2.rst_stream(stream, h2.PROTOCOL_ERROR if not increment else h2.FLOW_CONTROL_ERROR)
                self._reset(stream)
                return
        self._drain_blocked(out)

    def _reset(self, stream: int) -> None:
        st = self.streams.pop(stream, None)
        self.blocked.discard(stream)
        if st is not None and st.handler is not None:
            st.handler.reset()

    # ------------------------------------------------------------------ answers out
    def send(self, stream: int, head: bytes | None, body: bytes, tail: bytes | None) -> None:
        """Part of a stream's answer: a header block, then body bytes (as the windows allow), then
        the trailers that end the stream. A stream already gone (reset, connection lost) takes nothing."""
        st = self.streams.get(stream)
        if st is None or self.transport is None:
            return
        out = bytearray(h2.frame(h2.HEADERS, h2.END_HEADERS, stream, self._block(head))) if head is not None else bytearray()
        st.out = st.out + body if st.out else body
        st.tail = tail
        self._drain(stream, st, out)
        self.transport.write(out)
        self._close_if_done()

    def send_last(self, stream: int, block: bytes) -> None:
        """Ends a stream with one header block (a trailers-only answer, or a refusal)."""
        st = self.streams.get(stream)
        if st is None or self.transport is None:
            return
        out = bytearray(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream, self._block(block)))
        self._closed(stream, st, out)
        self.transport.write(out)
        self._close_if_done()

    def _block(self, block: bytes) -> bytes:
        """A header block as sent: after the client shrinks its HPACK table, the next block
        starts by setting ours to 0 (RFC 7541 4.2; we never index, so 0 always fits)."""
        if self.table_shrunk:
            self.table_shrunk = False
            return h2.TABLE_SIZE_ZERO + block
        return block

    def _drain(self, stream: int, st: _Stream, out: bytearray) -> None:
        sent, size = 0, len(st.out)
        while sent < size:
            n = min(size - sent, st.window, self.send_window, self.peer_max_frame)
            if n <= 0:
                self.blocked.add(stream)
                st.out = st.out[sent:]
                return
            out += h2.frame(h2.DATA, 0, stream, memoryview(st.out)[sent:sent + n])
            sent += n
            st.window -= n
            self.send_window -= n
        st.out = b""
        self.blocked.discard(stream)
        if st.tail is not None:
            out += h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream, self._block(st.tail))
            self._closed(stream, st, out)

    def _drain_blocked(self, out: bytearray) -> None:
        for stream in list(self.blocked):
            st = self.streams.get(stream)
            if st is not None and self.send_window > 0:
                self._drain(stream, st, out)

    def _closed(self, stream: int, st: _Stream, out: bytearray) -> None:
        """Our side ended the stream: if the client is still sending, it is told to stop."""
        del self.streams[stream]
        self.blocked.discard(stream)
        if not st.remote_closed:
            out += h2.rst_stream(stream, h2.NO_ERROR)
        if not self.streams:
            self.idle_since = asyncio.get_running_loop().time()

    # ------------------------------------------------------------------ ending
    def go_away(self) -> None:
        """No new streams; the connection closes once its open streams are answered."""
        if self.transport is not None and not self.closing:
            self.transport.write(h2.goaway(self.last_stream, h2.NO_ERROR))
        self.closing = True
        self._close_if_done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _close_if_done(self) -> None:
        if self.closing and not self.streams:
            self.close()

    def _fail(self, exc: h2.H2Error) -> None:
        log.info("gRPC connection closed: %s", exc.message)
        if self.transport is not None:
            self.transport.write(h2.goaway(self.last_stream, exc.code, exc.message))
            self.transport.close()

    def _handshake_due(self) -> None:
        if not self.settled:
            self._fail(h2.H2Error(h2.PROTOCOL_ERROR, f"no HTTP/2 preface and SETTINGS within {self.limits.handshake_s:g} s"))

    def _tick(self) -> None:
        """Once a keepalive period: idle connections close, silent ones are pinged, and dropped
        if the ping is not answered within the next period."""
        now = asyncio.get_running_loop().time()
        if self.streams:
            self.idle_since = now
        elif now - self.idle_since >= self.limits.idle_s:
            return self.go_away()
        if self.reads == self.reads_at_tick:
            if self.ping_due:
                return self._fail(h2.H2Error(h2.NO_ERROR, "keepalive ping not answered"))
            if self.transport is not None:
                self.transport.write(h2.frame(h2.PING, 0, 0, b"\0" * 8))
            self.ping_due = True
        self.reads_at_tick = self.reads
        self.timers[1] = asyncio.get_running_loop().call_later(self.limits.keepalive_s, self._tick)
