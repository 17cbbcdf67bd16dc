"""HeldWrites and Burst on real sockets: writes held are sent as one, with the loop turn's other
answers at the start of the next (or at once, without a burst); later writes keep their order; a
close sends what waits."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from modelplex.serving.http_protocol import HeldWrites, burst_of


async def _pair(burst: bool = True, use_burst: Callable[[], bool] = lambda: True) -> tuple[HeldWrites, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    return HeldWrites(transport, burst_of(loop) if burst else None, use_burst), peer


def _pending(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


async def _settle() -> None:
    await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "writes, held",
    [
        ([b"HTTP/1.1 200 OK\r\n\r\n", b"body"], True),
        ([b"a", bytearray(b"b"), memoryview(b"c")], True),
        ([b"not held"], False),
    ],
)
def test_held_writes_reach_the_peer_as_one_in_the_next_turn(writes: list[bytes], held: bool) -> None:
    async def run() -> None:
        transport, peer = await _pair()
        if held:
            transport.hold()
        for data in writes:
            transport.write(data)
        await _settle()
        whole = b"".join(bytes(d) for d in writes)
        assert _pending(peer) == (b"" if held else whole)
        transport.send()
        transport.write(b"+after")  # queued behind the held answer, not before it
        if held:
            await asyncio.sleep(0)  # the burst goes out at the start of the next loop turn
            await _settle()
            assert _pending(peer) == whole + b"+after"
        else:
            assert _pending(peer) == b"+after"
        transport.close()
        peer.close()

    asyncio.run(run())


def test_answers_of_one_turn_leave_together_and_a_close_sends_what_waits() -> None:
    async def run() -> None:
        (a, peer_a), (b, peer_b) = await _pair(), await _pair()
        for t, text in ((a, b"to a"), (b, b"to b")):
            t.hold()
            t.write(text)
            t.send()
        assert _pending(peer_a) == _pending(peer_b) == b""  # nothing written in this turn
        b.close()  # sends what waits first
        await _settle()
        assert (_pending(peer_a), _pending(peer_b)) == (b"to a", b"to b")
        assert b.is_closing()
        a.close()
        peer_a.close()
        peer_b.close()

    asyncio.run(run())


def test_without_a_burst_a_held_answer_leaves_at_send_as_one_write() -> None:
    async def run() -> None:
        transport, peer = await _pair(burst=False)
        transport.hold()
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        await _settle()
        assert _pending(peer) == b""
        transport.send()
        transport.write(b"+after")
        await _settle()
        assert _pending(peer) == b"HTTP/1.1 200 OK\r\n\r\nbody+after"
        transport.close()
        peer.close()

    asyncio.run(run())


def test_bursts_follow_the_switch_answer_by_answer_in_order() -> None:
    """The switch is asked at each answer (a new plan may take the frontend's own core away);
    an answer sent at once never overtakes one still waiting in the burst."""
    async def run() -> None:
        on = [True]
        transport, peer = await _pair(use_burst=lambda: on[0])
        for text, burst_on in ((b"1", True), (b"2", False)):
            on[0] = burst_on
            transport.hold()
            transport.write(text)
            transport.send()
        assert _pending(peer) == b""  # "2" waits behind "1", which waits for the next turn
        await asyncio.sleep(0)
        await _settle()
        assert _pending(peer) == b"12"
        transport.hold()
        transport.write(b"3")
        transport.send()  # the switch is off and nothing waits: at once, in this turn
        assert _pending(peer) == b"3"
        transport.close()
        peer.close()

    asyncio.run(run())
