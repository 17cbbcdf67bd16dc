"""The live runtime on the fake executor and a virtual clock: decide, execute, feed back; a
worker that dies mid-batch is restarted and everything queued behind it is still answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from models import add_config_yaml, identity_fp32  # tests/support (conftest puts it on the path)
from modelplex.core.errors import UnavailableError
from modelplex.core.tensors import DataType
from modelplex.runtime.clock import VirtualClock
from modelplex.runtime.fake import FakeExecutor
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.slice_runner import WORKER_POLL_S
from modelplex.serving.slice_set import SliceSet
from modelplex.serving.types import InferInput, InferRequest, InferResponse


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fake-repo")
    identity_fp32(root / "m" / "1" / "model.onnx")
    add_config_yaml(root / "m", "max_batch_size: 1\n")
    return root


def request(i: int) -> InferRequest:
    return InferRequest("m", None, [InferInput("x", DataType.FP32, (1, 1), np.full((1, 1), i, np.float32))])


def test_a_crash_mid_batch_fails_only_that_batch_and_the_queue_is_served_after_restart(repo: Path) -> None:
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.010, lambda spec, models: 0.050)

    async def main() -> list[InferResponse | BaseException]:
        plane = DataPlane(repo, SliceSet(fake, clock, [0]))
        await plane.start()
        tasks = [asyncio.ensure_future(plane.infer(request(i))) for i in range(5)]
        await clock.sleep(0.005)  # the first batch is running
        (slice_id,) = plane.slices.runners
        fake.crash(slice_id)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        runner = plane.slices.runners[slice_id]
        assert runner.restart_count == 1 and runner.ready
        await plane.stop()
        return results

    results = clock.run(main())
    assert isinstance(results[0], UnavailableError) and "exited" in results[0].message
    assert all(isinstance(r, InferResponse) for r in results[1:])
    # the restart took the measured start time: the rest ran one after another after it
    assert [round(b.finished_s, 3) for b in fake.log] == [0.115, 0.125, 0.135, 0.145]  # start 0.05, crash 0.055, back 0.105


def test_replacing_the_workers_of_a_device_answers_everything(repo: Path) -> None:
    """What the server does after an MPS server fault: every worker on the device is replaced;
    the batch running fails as lost (retriable), the queue is served by the new worker."""
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.010, lambda spec, models: 0.050)

    async def main() -> tuple[int, list[InferResponse | BaseException]]:
        plane = DataPlane(repo, SliceSet(fake, clock, [0]))
        await plane.start()
        tasks = [asyncio.ensure_future(plane.infer(request(i))) for i in range(4)]
        await clock.sleep(0.005)
        replaced = plane.slices.replace_workers_on(["cpu0", "gpu9"], "MPS server 42 exited")
        assert plane.slices.replace_workers_on(["gpu9"], "no such device") == 0
        results = await asyncio.gather(*tasks, return_exceptions=True)
        (runner,) = plane.slices.runners.values()
        assert runner.restart_count == 1 and runner.ready
        await plane.stop()
        return replaced, results

    replaced, results = clock.run(main())
    assert replaced == 1
    assert all(isinstance(r, InferResponse) or "MPS server 42 exited" in str(r) for r in results)
    assert sum(isinstance(r, InferResponse) for r in results) >= 3


@pytest.mark.parametrize(
    ("cpus", "frontend_cpus", "own"),
    [([1], (0,), True), ([0], (), False), ([0], (0,), False), ([0, 1], (1,), False)],
)
def test_a_slice_off_the_frontends_cores_hands_over_its_next_batch_first(
    repo: Path, cpus: list[int], frontend_cpus: tuple[int, ...], own: bool
) -> None:
    """Either order of 'answer the batch' and 'hand over the next' answers everything, on the
    same schedule; the next-first order, and a worker polling for its batches, are taken only
    where the frontend keeps other cores."""
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.010)

    async def main() -> tuple[bool, list[InferResponse]]:
        plane = DataPlane(repo, SliceSet(fake, clock, cpus, frontend_cpus=frontend_cpus))
        await plane.start()
        results = await asyncio.gather(*(plane.infer(request(i)) for i in range(5)))
        (runner,) = plane.slices.runners.values()
        await plane.stop()
        return runner.own_cores, results

    own_cores, results = clock.run(main())
    assert own_cores == own
    assert list(fake.polls.values()) == [WORKER_POLL_S if own else 0.0]
    assert len(results) == 5 and all(isinstance(r, InferResponse) for r in results)
    assert [float(b.inputs[0][1][0, 0]) for b in fake.log] == [0, 1, 2, 3, 4]  # in order, one at a time
    assert [round(b.finished_s, 3) for b in fake.log] == [0.01, 0.02, 0.03, 0.04, 0.05]


@pytest.mark.parametrize(("cpus", "frontend_cpus", "depth"), [([1], (0,), 2), ([0], (), 1), ([0, 1], (1,), 1)])
def test_a_slice_on_cores_of_its_own_queues_the_next_batch_behind_the_running_one(
    repo: Path, cpus: list[int], frontend_cpus: tuple[int, ...], depth: int
) -> None:
    """Off the frontend's cores the worker holds the next batch while it runs one: the batches
    still run one after another, and the wait behind the running batch is learned as neither
    the model's time nor the channel's."""
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.010)

    async def main() -> tuple[int, int, float, list[InferResponse]]:
        plane = DataPlane(repo, SliceSet(fake, clock, cpus, frontend_cpus=frontend_cpus))
        await plane.start()
        tasks = [asyncio.ensure_future(plane.infer(request(i))) for i in range(5)]
        await clock.sleep(0.005)
        (runner,) = plane.slices.runners.values()
        held = runner.scheduler.running
        results = await asyncio.gather(*tasks)
        learned = runner.scheduler.queue("m").estimator.predict_s(1)
        await plane.stop()
        return runner.describe()["depth"], held, learned, results

    got_depth, held, learned, results = clock.run(main())
    assert got_depth == depth and held == depth
    assert len(results) == 5 and all(isinstance(r, InferResponse) for r in results)
    assert [round(b.started_s, 3) for b in fake.log] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert learned == pytest.approx(0.010, rel=0.05)
