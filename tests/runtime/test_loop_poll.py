"""LoopPoll on a real event loop: it keeps the loop turning (no sleep in epoll) while short
batches are waited for, never for long ones, and stops by itself when a holder overstays."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelplex.runtime.loop_poll import POLL_MAX_S, POLL_SLACK_S, LoopPoll, poll_of


@pytest.mark.parametrize("predicted_s, held", [(0.0, True), (0.0005, True), (POLL_MAX_S, True), (POLL_MAX_S * 1.01, False)])
def test_only_short_batches_are_polled_for(predicted_s: float, held: bool) -> None:
    async def run() -> None:
        poll = LoopPoll(asyncio.get_running_loop())
        assert poll.hold(predicted_s) is held
        await asyncio.sleep(0)
        assert poll.polling is held
        if held:
            poll.release()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert not poll.polling  # the next turn after the last release stops it

    asyncio.run(run())


def test_a_holder_that_overstays_stops_the_polling_after_its_prediction_and_slack() -> None:
    async def run() -> None:
        poll = poll_of(asyncio.get_running_loop())
        assert poll is poll_of(asyncio.get_running_loop())  # one per loop
        assert poll.hold(0.0005)
        await asyncio.to_thread(time.sleep, 0.0005 + POLL_SLACK_S + 0.05)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not poll.polling  # still held, but past its bound
        poll.release()

    asyncio.run(run())


def test_polling_goes_on_while_held_within_its_bound() -> None:
    async def run() -> None:
        poll = LoopPoll(asyncio.get_running_loop())
        assert poll.hold(POLL_MAX_S)
        for _ in range(50):  # many loop turns: the tick schedules itself again on each
            await asyncio.sleep(0)
        assert poll.polling
        poll.release()

    asyncio.run(run())
