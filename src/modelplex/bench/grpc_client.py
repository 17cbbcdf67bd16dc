"""A cheap gRPC client for load generation: unary calls of one pre-serialized request over one
HTTP/2 connection, its frames written by hand, so that on a small machine the measurement is of
the server (grpcio's Python client spends several times the server's CPU per call; the HTTP side
has modelplex.bench.http). It speaks to any gRPC server: answers' header blocks are decoded by
`hpack` (in order, as HPACK needs); answer bodies are dropped unread; each call returns its
grpc-status. Requests must fit the server's windows as they open (the benchmarks' are 12 KB).
"""

from __future__ import annotations

import asyncio
from typing import cast

import hpack

from modelplex.serving import h2_frames as h2

_RECEIVE_WINDOW = 1 << 30  # what the server may send before we open the windows again
_STREAM_WINDOW = (1 << 31) - 1  # per call: an answer never waits for its stream's window
RESET = -1  # the call's status when the server reset its stream or the connection closed


class GrpcConn(asyncio.Protocol):
    """One HTTP/2 connection; `call(message)` sends one unary call and returns its grpc-status."""

    def __init__(self, host: str, port: int, method: str) -> None:
        self.head = b"".join(h2.literal(k, v) for k, v in [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", method.encode()), (b":authority", f"{host}:{port}".encode()),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")])
        self.transport: asyncio.Transport | None = None
        self.decoder = hpack.Decoder()
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.next_stream = 1
        self.pending = b""
        self.send_window = h2.DEFAULT_WINDOW  # the server's connection window for what we send
        self.window_opened = asyncio.Event()
        self.received = 0  # bytes since we last opened the connection's window

    @classmethod
    async def open(cls, host: str, port: int, method: str) -> GrpcConn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(host, port, method), host, port)
        return conn

    async def call(self, message: bytes) -> int:
        body = h2.grpc_message(message)
        while self.send_window < len(body) and self.transport is not None:
            self.window_opened.clear()
            await self.window_opened.wait()
        if self.transport is None:
            return RESET
        stream, self.next_stream = self.next_stream, self.next_stream + 2
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[stream] = answer
        self.send_window -= len(body)
        self.transport.write(h2.frame(h2.HEADERS, h2.END_HEADERS, stream, self.head) + h2.frame(h2.DATA, h2.END_STREAM, stream, body))
        return await answer

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(h2.PREFACE + h2.settings({h2.SETTINGS_ENABLE_PUSH: 0, h2.SETTINGS_INITIAL_WINDOW_SIZE: _STREAM_WINDOW})
                             + h2.window_update(0, _RECEIVE_WINDOW - h2.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.window_opened.set()
        for answer in self.waiting.values():
            if not answer.done():
                answer.set_result(RESET)
        self.waiting.clear()

    def data_received(self, data: bytes) -> None:
        data = self.pending + data if self.pending else data
        out = bytearray()
        try:
            frames, pos = h2.split_frames(data, 0)
        except h2.H2Error:
            return self.close()
        for kind, flags, stream, payload in frames:
            self._frame(kind, flags, stream, payload, out)
        self.pending = data[pos:]
        if self.received >= _RECEIVE_WINDOW // 2:
            out += h2.window_update(0, self.received)
            self.received = 0
        if out and self.transport is not None:
            self.transport.write(out)

    def _frame(self, kind: int, flags: int, stream: int, payload: memoryview, out: bytearray) -> None:
        if kind == h2.DATA:
            self.received += len(payload)
        elif kind == h2.HEADERS:
            fields = self.decoder.decode(bytes(h2.unpad(flags, payload, "HEADERS")), raw=True)
            if flags & h2.END_STREAM:  # trailers (or a trailers-only answer)
                status = next((int(v) for k, v in fields if k == b"grpc-status"), RESET)
                self._answer(stream, status)
        elif kind == h2.RST_STREAM:
            self._answer(stream, RESET)
        elif kind == h2.SETTINGS and not flags & h2.ACK:
            out += h2.frame(h2.SETTINGS, h2.ACK, 0)
        elif kind == h2.PING and not flags & h2.ACK:
            out += h2.frame(h2.PING, h2.ACK, 0, payload)
        elif kind == h2.WINDOW_UPDATE and stream == 0:
            self.send_window += h2.read_u32(payload, "WINDOW_UPDATE")
            self.window_opened.set()
        elif kind == h2.GOAWAY:
            self.close()

    def _answer(self, stream: int, status: int) -> None:
        answer = self.waiting.pop(stream, None)
        if answer is not None and not answer.done():
            answer.set_result(status)
