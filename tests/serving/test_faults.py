"""Faults on the live runtime (fake executor, virtual clock: deterministic, no real time): a hung
batch is given up on and its worker replaced, its requests retried on another slice or answered;
every request is answered by its deadline or the longest wait; queue bytes are bounded; a
request whose client left is never run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models import add_config_yaml, identity_fp32  # tests/support (conftest puts it on the path)
from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeadlineError, UnavailableError, WorkerLostError
from modelplex.core.tensors import DataType
from modelplex.runtime.clock import VirtualClock
from modelplex.runtime.fake import FakeExecutor
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.limits import ClientLink, Limits
from modelplex.serving.slice_set import SliceSet
from modelplex.serving.types import InferInput, InferRequest, InferResponse


def _repo(root: Path, name: str, config: str) -> Path:
    identity_fp32(root / name / "1" / "model.onnx")
    add_config_yaml(root / name, config)
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    _repo(root, "m", "max_batch_size: 1\n")
    _repo(root, "slo", "max_batch_size: 1\nslo_ms: 50\n")
    _repo(root, "two", "max_batch_size: 1\ninstances: 2\n")
    return root


def request(model: str, i: int = 0, timeout_us: int | None = None) -> InferRequest:
    params: dict[str, object] = {"timeout": timeout_us} if timeout_us else {}
    return InferRequest(model, None, [InferInput("x", DataType.FP32, (1, 1), np.full((1, 1), i, np.float32))], parameters=params)


def hang_first(seconds: float = 1000.0, normal: float = 0.010) -> Callable[[SliceSpec, str, int], float]:
    """Batch latencies: the first batch hangs for `seconds`, the rest take `normal`."""
    calls = [0]

    def latency(spec: SliceSpec, model: str, rows: int) -> float:
        calls[0] += 1
        return seconds if calls[0] == 1 else normal

    return latency


def run_plane(repo: Path, fake_latency: Callable[[SliceSpec, str, int], float],
              body: Callable[[DataPlane, VirtualClock], object], limits: Limits = Limits(), cpus: int = 4) -> object:
    clock = VirtualClock()
    fake = FakeExecutor(clock, fake_latency, lambda spec, models: 0.050)

    async def main() -> object:
        plane = DataPlane(repo, SliceSet(fake, clock, list(range(cpus))), limits=limits)
        await plane.start()
        try:
            result = body(plane, clock)
            return await result if asyncio.iscoroutine(result) else result
        finally:
            await plane.stop()

    return clock.run(main())


def test_a_hung_batch_is_answered_at_its_deadline_and_its_worker_replaced(repo: Path) -> None:
    async def body(plane: DataPlane, clock: VirtualClock) -> tuple[object, object, int, float]:
        t0 = clock.now()
        first = await asyncio.gather(plane.infer(request("slo")), return_exceptions=True)
        answered_at = clock.now() - t0
        await clock.sleep(12.0)  # past the batch limit (10 s): the worker is replaced
        (runner,) = plane.slices.runners_of("slo")
        later = await plane.infer(request("slo", 1))
        return first[0], later, runner.restart_count, answered_at

    first, later, restarts, answered_at = run_plane(repo, hang_first(), body)  # type: ignore[misc]
    assert isinstance(first, DeadlineError) and "deadline passed" in first.message
    assert answered_at == pytest.approx(0.048, abs=1e-6)  # at its 50 ms SLO less the answer margin, not when the batch ends
    assert isinstance(later, InferResponse) and restarts == 1


def test_a_request_without_deadline_gets_the_longest_wait(repo: Path) -> None:
    async def body(plane: DataPlane, clock: VirtualClock) -> tuple[object, float]:
        t0 = clock.now()
        (result,) = await asyncio.gather(plane.infer(request("m")), return_exceptions=True)
        return result, clock.now() - t0

    result, when = run_plane(repo, hang_first(), body, Limits(max_wait_s=3.0))  # type: ignore[misc]
    assert isinstance(result, UnavailableError) and "longest wait of 3 s" in result.message
    assert when == pytest.approx(2.998, abs=1e-6)  # the longest wait less the answer margin


def test_a_request_on_a_hung_slice_is_retried_on_the_other_slice(repo: Path) -> None:
    async def body(plane: DataPlane, clock: VirtualClock) -> tuple[object, float]:
        t0 = clock.now()
        result = await plane.infer(request("two"))  # no deadline: waits for the hung batch's limit
        return result, clock.now() - t0

    result, when = run_plane(repo, hang_first(), body)  # type: ignore[misc]
    assert isinstance(result, InferResponse)
    assert 10.0 < when < 11.0  # given up on after the 10 s batch limit, then served on the other slice


def test_the_retry_is_skipped_when_no_other_slice_is_up(repo: Path) -> None:
    async def body(plane: DataPlane, clock: VirtualClock) -> object:
        (result,) = await asyncio.gather(plane.infer(request("m")), return_exceptions=True)
        return result

    result = run_plane(repo, hang_first(), body)
    assert isinstance(result, WorkerLostError) and "hung" in result.message


def test_queue_bytes_are_bounded_per_model(repo: Path) -> None:
    async def body(plane: DataPlane, clock: VirtualClock) -> list[object]:
        return await asyncio.gather(*(plane.infer(request("m", i)) for i in range(4)), return_exceptions=True)

    results = run_plane(repo, lambda s, m, r: 0.010, body, Limits(max_model_queue_bytes=8))  # two 4-byte requests
    assert isinstance(results, list)
    assert [type(r).__name__ for r in results] == ["InferResponse", "InferResponse", "UnavailableError", "UnavailableError"]
    assert "--max-model-queue-mb" in results[2].message  # type: ignore[union-attr]


def test_a_request_whose_client_left_is_never_run(repo: Path) -> None:
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda s, m, r: 0.010)

    async def main() -> list[object]:
        plane = DataPlane(repo, SliceSet(fake, clock, [0, 1, 2, 3]))
        await plane.start()
        links = [ClientLink() for _ in range(3)]
        tasks = [asyncio.ensure_future(plane.infer(request("m", i), links[i])) for i in range(3)]
        await clock.sleep(0.001)  # the first runs, the others wait
        links[1].gone()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await plane.stop()
        return list(results)

    results = clock.run(main())
    assert isinstance(results[0], InferResponse) and isinstance(results[2], InferResponse)
    assert isinstance(results[1], asyncio.CancelledError)
    assert [float(b.inputs[0][1][0, 0]) for b in fake.log] == [0.0, 2.0]  # request 1 never ran
