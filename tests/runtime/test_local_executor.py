"""The local-process executor against real worker processes: load and unload into a running
worker, a slice of two processes taking batches at once, and stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import psutil
import pytest

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.repository.folders import load_model_config
from modelplex.runtime.local import LocalExecutor

pytestmark = pytest.mark.slow
SPEC = SliceSpec("cpu0", 1, (0,))


def test_load_run_unload_in_a_running_worker(test_repository: Path) -> None:
    cnn, echo = load_model_config(test_repository, "cnn"), load_model_config(test_repository, "bytes_identity")
    exits: list[tuple[str, int | None]] = []

    async def main() -> None:
        ex = LocalExecutor()
        await ex.start("s", SPEC, {"cnn": cnn}, lambda sid, code: exits.append((sid, code)))
        text = np.array([[b"a", b"b"]], dtype=object)
        with pytest.raises(InvalidArgumentError):  # not loaded yet
            await ex.run("s", "bytes_identity", [("text", text)], None)
        await ex.load("s", echo)
        result = await ex.run("s", "bytes_identity", [("text", text)], None)
        assert result.outputs[0][1].tolist() == text.tolist()
        await ex.unload("s", "bytes_identity")
        with pytest.raises(InvalidArgumentError):
            await ex.run("s", "bytes_identity", [("text", text)], None)
        x = np.zeros((1, 3, 32, 32), np.float32)
        assert (await ex.run("s", "cnn", [("input", x)], None)).outputs[0][1].shape == (1, 10)  # still serves cnn
        await ex.stop("s")

    asyncio.run(main())
    assert exits == []  # no worker died on the way


def test_a_slice_of_two_processes_runs_two_batches_at_once(test_repository: Path) -> None:
    slow = load_model_config(test_repository, "slow")

    async def main() -> None:
        ex = LocalExecutor()
        await ex.start("s", SPEC, {"slow": slow}, lambda sid, code: None, processes=2)
        status = ex.status("s")
        assert status.alive and len(status.pids) == 2
        x = np.zeros((1, 1, 256, 256), np.float32)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        both = await asyncio.gather(*(ex.run("s", "slow", [("x", x)], None) for _ in range(2)))
        # in two processes at once: the wall time is less than the two computations end to end
        assert loop.time() - t0 < 0.9 * sum(r.compute_s for r in both)
        await ex.stop("s")
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in status.pids)

    asyncio.run(main())


def test_a_polling_worker_answers_batch_after_batch(test_repository: Path) -> None:
    """One request at a time, a worker started with a poll time polls for its next batch and the
    frontend's loop for its answer; the answers are the same as a sleeping worker's."""
    from modelplex.runtime.loop_poll import poll_of

    cnn = load_model_config(test_repository, "cnn")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)

    async def outputs(poll_s: float) -> tuple[list[np.ndarray], bool]:
        ex = LocalExecutor()
        await ex.start("s", SPEC, {"cnn": cnn}, lambda sid, code: None, poll_s=poll_s)
        results, polled = [], False
        for _ in range(20):
            task = asyncio.ensure_future(ex.run("s", "cnn", [("input", x)], None))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            polled |= poll_of(asyncio.get_running_loop()).polling
            results.append((await task).outputs[0][1])
        await ex.stop("s")
        return results, polled

    polling, polled = asyncio.run(outputs(0.0005))
    sleeping, not_polled = asyncio.run(outputs(0.0))
    assert polled and not not_polled
    assert all(np.array_equal(a, b) for a, b in zip(polling, sleeping))
