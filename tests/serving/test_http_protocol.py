"""HeldWrites on a real socket: writes held are sent as one, in order, when released; a close
sends what was held first."""

from __future__ import annotations

import asyncio
import socket

import pytest

from modelplex.serving.http_protocol import HeldWrites


async def _pair() -> tuple[HeldWrites, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    return HeldWrites(transport), peer


def _pending(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize(
    "writes, held",
    [
        ([b"HTTP/1.1 200 OK\r\n\r\n", b"body"], True),
        ([b"a", bytearray(b"b"), memoryview(b"c")], True),
        ([b"not held"], False),
    ],
)
def test_held_writes_reach_the_peer_as_one(writes: list[bytes], held: bool) -> None:
    async def run() -> None:
        transport, peer = await _pair()
        if held:
            transport.hold()
        for data in writes:
            transport.write(data)
        await asyncio.sleep(0.05)
        early = _pending(peer)
        assert early == (b"" if held else b"".join(bytes(d) for d in writes))
        transport.send()
        await asyncio.sleep(0.05)
        if held:
            assert _pending(peer) == b"".join(bytes(d) for d in writes)
        transport.write(b"after")  # no longer held
        await asyncio.sleep(0.05)
        assert _pending(peer) == b"after"
        transport.close()
        peer.close()

    asyncio.run(run())


def test_close_sends_what_was_held() -> None:
    async def run() -> None:
        transport, peer = await _pair()
        transport.hold()
        transport.write(b"last words")
        transport.close()
        await asyncio.sleep(0.05)
        assert _pending(peer) == b"last words"
        assert transport.is_closing()
        peer.close()

    asyncio.run(run())
