"""The load generator's lean gRPC client against grpcio's own server (C-core: HPACK with
Huffman and the dynamic table) and modelplex's edge: statuses, many calls on one connection."""

from __future__ import annotations

import asyncio
from concurrent import futures
from typing import Iterator

import grpc
import pytest

from modelplex.bench.grpc_client import RESET, GrpcConn
from modelplex.serving.grpc_edge import CallContext, EdgeLimits, GrpcEdge, Method


def _handler(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"refuse":
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused")
    return request[::-1]


@pytest.fixture(scope="module")
def grpcio_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(_handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.S", {"m": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


async def _calls(port: int, messages: list[bytes]) -> list[int]:
    conn = await GrpcConn.open("127.0.0.1", port, "/t.S/m")
    try:
        return list(await asyncio.gather(*(conn.call(m) for m in messages)))
    finally:
        conn.close()


def test_statuses_from_grpcio_server(grpcio_port: int) -> None:
    messages = [b"x" * i for i in range(1, 300)] + [b"refuse"]
    assert asyncio.run(_calls(grpcio_port, messages)) == [0] * 299 + [grpc.StatusCode.FAILED_PRECONDITION.value[0]]


def test_statuses_from_the_edge_and_a_closed_connection() -> None:
    async def refuse_odd(request: object, context: CallContext) -> object:
        if len(bytes(request)) % 2:  # type: ignore[call-overload]
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "odd")
        return request

    async def run() -> tuple[list[int], int]:
        edge = GrpcEdge({"/t.S/m": Method("/t.S/m", bytes, bytes, unary=refuse_odd)}, EdgeLimits(1 << 20), gate=None)
        server = await asyncio.get_running_loop().create_server(edge.connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        statuses = await _calls(port, [b"ab", b"abc", b"abcd"])
        conn = await GrpcConn.open("127.0.0.1", port, "/t.S/m")
        server.close()
        for c in list(edge.connections):
            c.close()
        return statuses, await conn.call(b"ab")

    statuses, after_close = asyncio.run(run())
    assert statuses == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert after_close == RESET
