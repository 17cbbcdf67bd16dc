"""The gRPC edge on a real loopback socket, driven by grpcio's client (C-core) and by raw frames:
flow control both ways, deadlines, cancellation, compression, limits, protocol errors, stop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
import uvloop

from modelplex.serving import h2_frames as h2
from modelplex.serving.grpc_edge import CallContext, EdgeLimits, GrpcEdge, GrpcServer, Method
from modelplex.serving.h2_conn import H2Limits

LIMIT = 8 << 20


@dataclass
class Seen:
    cancelled: list[str] = field(default_factory=list)  # the slow calls that were cancelled


def _methods(seen: Seen) -> dict[str, Method]:
    async def echo(request: object, context: CallContext) -> object:
        return request

    async def slow(request: object, context: CallContext) -> object:
        try:
            await asyncio.sleep(float(bytes(request)))  # type: ignore[call-overload]
        except asyncio.CancelledError:
            seen.cancelled.append(bytes(request).decode())  # type: ignore[call-overload]
            raise
        return b"slept"

    async def boom(request: object, context: CallContext) -> object:
        raise RuntimeError("the handler broke")

    async def refuse(request: object, context: CallContext) -> object:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now: ünïcode, 100%")

    async def chat(requests: AsyncIterator[object], context: CallContext) -> AsyncIterator[object]:
        async for r in requests:
            yield bytes(r) * 2  # type: ignore[call-overload]

    same = {"decode": bytes, "encode": bytes}
    return {f"/t.S/{m.__name__}": Method(f"/t.S/{m.__name__}", unary=m, **same) for m in (echo, slow, boom, refuse)} | {
        "/t.S/chat": Method("/t.S/chat", stream=chat, **same)}


@dataclass
class Served:
    port: int
    seen: Seen
    edge: GrpcEdge
    server: GrpcServer
    loop: asyncio.AbstractEventLoop

    def channel(self, **options: object) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}", options=list(options.items()))


def _serve(limits: EdgeLimits) -> Iterator[Served]:
    loop = uvloop.new_event_loop()
    seen = Seen()
    edge = GrpcEdge(_methods(seen), limits, gate=None)
    server = loop.run_until_complete(loop.create_server(edge.connection, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = Served(server.sockets[0].getsockname()[1], seen, edge, GrpcServer(edge, server), loop)
    yield served
    asyncio.run_coroutine_threadsafe(served.server.stop(0.5), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    yield from _serve(EdgeLimits(LIMIT, max_calls=6))


def test_large_messages_both_ways_under_flow_control(served: Served) -> None:
    big = bytes(range(256)) * (6 << 12)  # 6 MiB: many windows each way
    with served.channel(**{"grpc.max_receive_message_length": LIMIT}) as ch:
        assert ch.unary_unary("/t.S/echo")(big, timeout=30) == big
        stream = ch.stream_stream("/t.S/chat")
        assert list(stream(iter([b"ab", big[:3 << 20], b"c"]), timeout=30)) == [b"abab", big[:3 << 20] * 2, b"cc"]


def test_statuses(served: Served) -> None:
    with served.channel() as ch:
        for method, code, text in [
            ("/t.S/nope", grpc.StatusCode.UNIMPLEMENTED, "method /t.S/nope is not served here"),
            ("/t.S/boom", grpc.StatusCode.INTERNAL, "internal error: the handler broke"),
            ("/t.S/refuse", grpc.StatusCode.FAILED_PRECONDITION, "not now: ünïcode, 100%"),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                ch.unary_unary(method)(b"x", timeout=10)
            assert (caught.value.code(), caught.value.details()) == (code, text)
        with pytest.raises(grpc.RpcError) as caught:
            ch.unary_unary("/t.S/echo")(b"x" * (LIMIT + 1), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ch.unary_unary("/t.S/echo")(b"still serving", timeout=10) == b"still serving"


def test_gzip_requests_are_read(served: Served) -> None:
    with served.channel() as ch:
        assert ch.unary_unary("/t.S/echo")(b"z" * 100_000, timeout=10, compression=grpc.Compression.Gzip) == b"z" * 100_000


def test_deadline_and_cancel_reach_the_handler(served: Served) -> None:
    with served.channel() as ch:
        with pytest.raises(grpc.RpcError) as caught:
            ch.unary_unary("/t.S/slow")(b"5.0", timeout=0.3)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        future = ch.unary_unary("/t.S/slow").future(b"5.1", timeout=10)
        time.sleep(0.3)
        future.cancel()
        _wait_for(lambda: served.seen.cancelled == ["5.0", "5.1"])
    _wait_for(lambda: served.edge.calls == 0)


def test_calls_beyond_the_limit_are_refused(served: Served) -> None:
    with served.channel() as ch:
        slow = [ch.unary_unary("/t.S/slow").future(b"1.0", timeout=10) for _ in range(6)]
        _wait_for(lambda: served.edge.calls == 6)
        with pytest.raises(grpc.RpcError) as caught:
            ch.unary_unary("/t.S/echo")(b"x", timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert [f.result() for f in slow] == [b"slept"] * 6


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def _frames_until_closed(sock: socket.socket) -> list[tuple[int, int, bytes]]:
    """(type, flags, payload) of every frame the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    frames, pos = [], 0
    while pos + h2.FRAME_HEAD <= len(data):
        length, kind, flags, _ = h2.read_head(data, pos)
        frames.append((kind, flags, data[pos + h2.FRAME_HEAD:pos + h2.FRAME_HEAD + length]))
        pos += h2.FRAME_HEAD + length
    return frames


def _goaway_code(frames: list[tuple[int, int, bytes]]) -> int:
    return next(int.from_bytes(p[4:8], "big") for kind, _, p in frames if kind == h2.GOAWAY)


@pytest.mark.parametrize("send, code", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", h2.PROTOCOL_ERROR),
    (b"GET / HTTP/1.0\r\n", h2.PROTOCOL_ERROR),  # shorter than the preface: refused at once
    (h2.PREFACE + h2.settings({}) + h2.frame(h2.DATA, 0, 0, b"x" * 20_000), h2.FRAME_SIZE_ERROR),
    (h2.PREFACE + h2.settings({}) + h2.frame(h2.HEADERS, h2.END_HEADERS, 2, b""), h2.PROTOCOL_ERROR),
    (h2.PREFACE + h2.settings({}) + h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"\xff\xff\xff"), h2.COMPRESSION_ERROR),
    (h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, b"\0" * 5), h2.FRAME_SIZE_ERROR),
    (h2.PREFACE + h2.settings({}) + h2.frame(h2.HEADERS, 0, 1, b"") + h2.frame(h2.PING, 0, 0, b"\0" * 8), h2.PROTOCOL_ERROR),
    (h2.PREFACE + h2.settings({}) + h2.frame(h2.DATA, 0, 9, b"x"), h2.PROTOCOL_ERROR),
])
def test_protocol_errors_end_the_connection_with_goaway(served: Served, send: bytes, code: int) -> None:
    with _connect(served.port) as sock:
        sock.sendall(send)
        assert _goaway_code(_frames_until_closed(sock)) == code
    with served.channel() as ch:
        assert ch.unary_unary("/t.S/echo")(b"ok", timeout=10) == b"ok"


def test_ping_settings_and_non_grpc_requests(served: Served) -> None:
    get = h2.literal(b":method", b"GET") + h2.literal(b":path", b"/t.S/echo") + h2.literal(b"content-type", b"application/grpc")
    json = h2.literal(b":method", b"POST") + h2.literal(b":path", b"/t.S/echo") + h2.literal(b"content-type", b"application/json")
    with _connect(served.port) as sock:
        sock.sendall(h2.PREFACE + h2.settings({}) + h2.frame(h2.PING, 0, 0, b"12345678")
                     + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, get)
                     + h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 3, json) + h2.goaway(0, h2.NO_ERROR))
        frames = _frames_until_closed(sock)
    assert (h2.PING, h2.ACK, b"12345678") in frames
    assert (h2.SETTINGS, h2.ACK, b"") in frames
    statuses = [p for kind, _, p in frames if kind == h2.HEADERS]
    assert statuses == [h2.literal(b":status", b"405"), h2.literal(b":status", b"415")]
    assert not [p for kind, _, p in frames if kind == h2.RST_STREAM]  # the client had ended both streams


def test_silent_and_idle_connections_are_closed() -> None:
    for limits, say in [(H2Limits(handshake_s=0.2), b""), (H2Limits(idle_s=0.2, keepalive_s=0.1), h2.PREFACE + h2.settings({}))]:
        for served in _serve(EdgeLimits(LIMIT, h2=limits)):
            with _connect(served.port) as sock:
                sock.sendall(say)
                started = time.monotonic()
                frames = _frames_until_closed(sock)
                assert time.monotonic() - started < 3
                assert _goaway_code(frames) in (h2.PROTOCOL_ERROR, h2.NO_ERROR)


def test_stop_lets_calls_in_flight_finish() -> None:
    for served in _serve(EdgeLimits(LIMIT)):
        with served.channel() as ch:
            future = ch.unary_unary("/t.S/slow").future(b"0.3", timeout=10)
            _wait_for(lambda: served.edge.calls == 1)
            asyncio.run_coroutine_threadsafe(served.server.stop(5.0), served.loop).result(10)
            assert future.result() == b"slept"
            with pytest.raises(grpc.RpcError) as caught:
                ch.unary_unary("/t.S/echo")(b"x", timeout=2)
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _call_frames(stream: int, message: bytes) -> bytes:
    head = b"".join(h2.literal(k, v) for k, v in [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/t.S/echo"),
                                                   (b"content-type", b"application/grpc")])
    return h2.frame(h2.HEADERS, h2.END_HEADERS, stream, head) + h2.frame(h2.DATA, h2.END_STREAM, stream, h2.grpc_message(message))


def test_a_shrunk_hpack_table_is_acknowledged_and_extra_streams_refused() -> None:
    import hpack

    for served in _serve(EdgeLimits(LIMIT, h2=H2Limits(max_streams=1))):
        with _connect(served.port) as sock:
            sock.sendall(h2.PREFACE + h2.settings({h2.SETTINGS_HEADER_TABLE_SIZE: 0}) + _call_frames(1, b"one"))
            time.sleep(0.3)
            # with one stream allowed, 7 (sent while the slow call on 5 runs) is refused
            slow = h2.literal(b":method", b"POST") + h2.literal(b":path", b"/t.S/slow") + h2.literal(b"content-type", b"application/grpc")
            sock.sendall(h2.frame(h2.HEADERS, h2.END_HEADERS, 5, slow) + h2.frame(h2.DATA, h2.END_STREAM, 5, h2.grpc_message(b"0.5"))
                         + _call_frames(7, b"two") + h2.goaway(0, h2.NO_ERROR))
            frames = _frames_until_closed(sock)
        blocks = [p for kind, _, p in frames if kind == h2.HEADERS]
        assert blocks[0].startswith(h2.TABLE_SIZE_ZERO) and not blocks[1].startswith(h2.TABLE_SIZE_ZERO)
        decoder = hpack.Decoder()
        decoder.max_allowed_table_size = 0
        assert [dict(decoder.decode(b, raw=True)).get(b"grpc-status") for b in blocks] == [None, b"0", None, b"0"]
        resets = [(int.from_bytes(p, "big")) for kind, _, p in frames if kind == h2.RST_STREAM]
        assert h2.REFUSED_STREAM in resets
        assert [p[5:] for kind, _, p in frames if kind == h2.DATA] == [b"one", b"slept"]


def test_a_unary_call_with_two_messages_is_refused(served: Served) -> None:
    with _connect(served.port) as sock:
        one = _call_frames(1, b"a")
        sock.sendall(h2.PREFACE + h2.settings({}) + one[:-len(h2.grpc_message(b"a")) - h2.FRAME_HEAD]  # the headers
                     + h2.frame(h2.DATA, 0, 1, h2.grpc_message(b"a") + h2.grpc_message(b"b")))
        time.sleep(0.3)
        sock.sendall(h2.goaway(0, h2.NO_ERROR))
        frames = _frames_until_closed(sock)
    blocks = [p for kind, _, p in frames if kind == h2.HEADERS]
    assert len(blocks) == 1 and h2.literal(b"grpc-status", b"3") in blocks[0]
    assert b"one whole request message, this one sent 2" in blocks[0]
