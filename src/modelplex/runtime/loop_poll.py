"""The event loop polls, instead of sleeping, while a short batch runs on a worker that polls
for its batches: one request at a time, on cores that are the worker's own (WorkerHandle.run).

An idle event loop sleeps in epoll, and the worker's answer must wake it: on a virtual machine an
idle core is woken through the hypervisor (tens of µs), and the worker pays for the wake-up in its
write. While a batch predicted to take at most POLL_MAX_S runs, the loop instead runs a callback
that schedules itself again, so each turn asks epoll without waiting and the answer is read as
soon as it lands. With the worker polling for its next batch (runtime.worker.NextFrame), the
round trip to the worker then goes through without either process sleeping: one request at a
time, neither kind of polling alone changed the median latency in ad-hoc runs; both together took
0.23 ms off the added p50 in the measured run (binary, benchmarks/README.md, "Polling"). Polling on after the answer, for the
client's next request, made it worse on our host (the frontend then competes with co-located
clients) and is not done. Slices ask for it only where the frontend keeps a core of its own and
the worker's cores are not the frontend's (SliceRunner.own_cores), so it takes nothing from a
worker. gRPC calls are served on this loop too (serving.grpc_edge); with grpc.aio, whose thread
a polling loop kept waiting for the GIL (gRPC 14 % slower at 8 and 32 in flight), the loop had
to stop polling while gRPC calls were served.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref

POLL_MAX_S = 0.002  # a batch predicted to take longer is waited for asleep
POLL_SLACK_S = 0.001  # polling for a batch lasts at most its prediction plus this


class LoopPoll:
    """Keeps one event loop polling while holders wait for short batches. One per loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._holders = 0  # batches being waited for with polling
        self._until = 0.0  # when polling stops (time.perf_counter: the loop's clock counts milliseconds)
        self._ticking = False

    def hold(self, predicted_s: float) -> bool:
        """Poll until the matching release(), for at most `predicted_s` + POLL_SLACK_S; False (and
        nothing to release) for a batch predicted to take longer than POLL_MAX_S."""
        if predicted_s > POLL_MAX_S:
            return False
        self._holders += 1
        self._until = max(self._until, time.perf_counter() + max(0.0, predicted_s) + POLL_SLACK_S)
        if not self._ticking:
            self._ticking = True
            self._loop.call_soon(self._tick)
        return True

    def release(self) -> None:
        self._holders -= 1

    @property
    def polling(self) -> bool:
        return self._ticking

    def _tick(self) -> None:
        if self._holders > 0 and time.perf_counter() < self._until:
            os.sched_yield()  # a process waiting for this core (a co-located client) runs first
            self._loop.call_soon(self._tick)
        else:
            self._ticking = False


_polls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPoll] = weakref.WeakKeyDictionary()


def poll_of(loop: asyncio.AbstractEventLoop) -> LoopPoll:
    """The loop's LoopPoll (made on first use, gone with the loop)."""
    poll = _polls.get(loop)
    if poll is None:
        poll = _polls[loop] = LoopPoll(loop)
    return poll
