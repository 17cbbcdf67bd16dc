"""The worker's wait for its next frame (runtime.worker.NextFrame) on a real socket pair: it
polls only while frames come within its poll time of each other, and never holds a frame up."""

from __future__ import annotations

import socket
import threading
import time

from modelplex.runtime.worker import NextFrame

POLL_S = 0.05


def _send_after(sock: socket.socket, delay_s: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay_s), sock.send(b"x")))
    t.start()
    return t


def test_it_polls_while_frames_come_soon_and_sleeps_once_they_do_not() -> None:
    ours, peer = socket.socketpair()
    wait = NextFrame(ours)
    try:
        for delay_s, polling_after in ((0.005, True), (0.005, True), (2 * POLL_S, False), (0.005, True)):
            sender = _send_after(peer, delay_s)
            t0 = time.perf_counter()
            wait.wait(POLL_S)
            waited = time.perf_counter() - t0
            assert ours.recv(1) == b"x"  # the frame is there once wait() returns (it never eats it)
            sender.join()
            assert waited < delay_s + 0.04  # returned when the frame came, not after the whole poll time
            assert wait.polling is polling_after
    finally:
        ours.close()
        peer.close()


def test_without_a_poll_time_it_returns_at_once() -> None:
    ours, peer = socket.socketpair()
    try:
        t0 = time.perf_counter()
        NextFrame(ours).wait(0.0)
        assert time.perf_counter() - t0 < 0.01
    finally:
        ours.close()
        peer.close()
