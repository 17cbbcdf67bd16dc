"""The virtual clock and the fake executor: deterministic time for the live runtime."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import UnavailableError
from modelplex.core.model import BatchingConfig, ModelConfig, ModelId
from modelplex.core.tensors import DataType, TensorSpec
from modelplex.runtime.clock import VirtualClock
from modelplex.runtime.fake import FakeExecutor

CONFIG = ModelConfig(
    ModelId("m", "1"), "m.onnx", "onnxruntime_onnx",
    (TensorSpec("x", DataType.FP32, (2,)),), (TensorSpec("y", DataType.FP32, (3,)),), BatchingConfig(max_batch_size=8),
)
SPEC = SliceSpec("cpu0", 1, (0,))


def test_virtual_time_jumps_exactly_to_each_timer() -> None:
    clock = VirtualClock()
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        async def after(name: str, at: float) -> None:
            await clock.sleep_until(at)
            seen.append((name, clock.now()))

        await asyncio.gather(after("b", 0.3), after("a", 0.1), after("c", 3600.0))
        await clock.sleep(0.25)
        seen.append(("slept", clock.now()))

    clock.run(main())
    assert seen == [("a", 0.1), ("b", 0.3), ("c", 3600.0), ("slept", 3600.25)]


def test_fake_executor_runs_batches_on_the_clock_and_reports_crashes() -> None:
    clock = VirtualClock()
    exits: list[tuple[str, int | None]] = []
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.01 * rows, lambda spec, models: 0.5)

    async def main() -> None:
        info = await fake.start("s1", SPEC, {"m": CONFIG}, lambda sid, code: exits.append((sid, code)))
        assert info.load_s == 0.5 and clock.now() == 0.5
        result = await fake.run("s1", "m", [("x", np.zeros((4, 2), np.float32))], None)
        assert clock.now() == pytest.approx(0.54) and result.compute_s == pytest.approx(0.04)
        assert result.outputs[0][0] == "y" and result.outputs[0][1].shape == (4, 3)
        fake.crash("s1")
        assert not fake.alive("s1")
        with pytest.raises(UnavailableError):
            await fake.run("s1", "m", [("x", np.zeros((1, 2), np.float32))], None)

    clock.run(main())
    assert exits == [("s1", -9)] and [b.model for b in fake.log] == ["m"]
