"""The runtime's clock: real (monotonic time, the running event loop) or virtual (an event loop
whose time jumps to its next timer whenever nothing is ready, for deterministic runs of the live
runtime against the simulator with a fake executor)."""

from __future__ import annotations

import asyncio
import heapq
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the runtime reads time from and waits on."""

    def now(self) -> float: ...

    async def sleep(self, delay_s: float) -> None: ...

    def call_at(self, when_s: float, callback: Callable[[], None]) -> Timer: ...


class MonotonicClock:
    """Real time: `time.monotonic()`, timers on the running event loop."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))

    def call_at(self, when_s: float, callback: Callable[[], None]) -> Timer:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when_s - time.monotonic()), callback)


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks on time: when nothing is ready, the loop's clock jumps to its next timer."""

    def __init__(self, loop_time: "_VirtualTime") -> None:
        super().__init__()
        self._time = loop_time

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self._time.advance()
        return ready


class _VirtualTime:
    """The virtual loop's time and the times its timers were set for (exact jumps, no drift)."""

    def __init__(self) -> None:
        self.now_s = 0.0  # current virtual time
        self.timers: list[float] = []  # heap of timer times

    def advance(self) -> None:
        while self.timers and self.timers[0] <= self.now_s:
            heapq.heappop(self.timers)
        if self.timers:
            self.now_s = heapq.heappop(self.timers)


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, vtime: _VirtualTime) -> None:
        super().__init__(_VirtualSelector(vtime))
        self._vtime = vtime

    def time(self) -> float:
        return self._vtime.now_s

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:  # type: ignore[override]
        heapq.heappush(self._vtime.timers, when)
        return super().call_at(when, callback, *args, context=context)


class VirtualClock:
    """Virtual time for the live runtime: `run(main())` runs a coroutine on an event loop whose
    clock starts at 0 and jumps from timer to timer, so a run takes no real time and is exactly
    repeatable. Only for code that waits on timers (a fake executor), not on real I/O."""

    def __init__(self) -> None:
        self._vtime = _VirtualTime()

    def now(self) -> float:
        return self._vtime.now_s

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))

    async def sleep_until(self, when_s: float) -> None:
        """Wake at exactly `when_s` (no float drift from a relative delay)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        loop.call_at(when_s, lambda: None if future.done() else future.set_result(None))
        await future

    def call_at(self, when_s: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_at(when_s, callback)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        loop = _VirtualLoop(self._vtime)
        try:
            return loop.run_until_complete(main)
        finally:
            loop.close()
