"""Model backends in real worker processes on the CPU: a TorchScript and a torch.export model
served by their config.pbtxt names, batch errors classified (the client's 400, the device's 503),
a worker whose "CUDA context" is lost exits after answering, and a GPU worker that would run on
the CPU refuses to start."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_models

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import DeviceError, InvalidArgumentError, ModelplexError
from modelplex.runtime.worker import POISONED_EXIT
from modelplex.runtime.worker_handle import WorkerHandle

pytestmark = pytest.mark.slow
SPEC = SliceSpec("cpu0", 1, (0,))


def test_torchscript_model_runs_in_a_worker_with_named_outputs(tmp_path: Path) -> None:
    path = torch_models.affine(tmp_path)

    async def main() -> None:
        handle = WorkerHandle("affine", str(path), SPEC)
        await handle.start()
        try:
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            outs, compute_s = await handle.run([("INPUT__0", x)], None)
            assert [n for n, _ in outs] == ["OUTPUT__0", "OUTPUT__1"]
            assert np.array_equal(outs[0][1], x * 2 + 1) and np.array_equal(outs[1][1], x.sum(1, keepdims=True))
            assert compute_s > 0
            only, _ = await handle.run([("INPUT__0", x)], ["OUTPUT__1"])  # one output asked for
            assert [n for n, _ in only] == ["OUTPUT__1"]
            with pytest.raises(InvalidArgumentError, match="missing input"):
                await handle.run([("wrong", x)], None)
            assert handle.alive
        finally:
            await handle.stop()

    asyncio.run(main())


def test_torch_export_model_runs_in_a_worker(tmp_path: Path) -> None:
    path = torch_models.exported_linear(tmp_path)
    torch.manual_seed(0)
    reference = torch.nn.Linear(4, 2)

    async def main() -> None:
        handle = WorkerHandle("linear", str(path), SPEC)
        await handle.start()
        try:
            x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
            outs, _ = await handle.run([("INPUT__0", x)], None)
            with torch.no_grad():
                expected = reference(torch.from_numpy(x)).numpy()
            assert np.allclose(outs[0][1], expected, atol=1e-5)
        finally:
            await handle.stop()

    asyncio.run(main())


def test_device_errors_are_503_and_a_poisoned_worker_exits_after_answering(tmp_path: Path) -> None:
    path = torch_models.faulty(tmp_path)
    exits: list[int | None] = []

    async def main() -> None:
        handle = WorkerHandle("faulty", str(path), SPEC, on_exit=lambda h, code: exits.append(code))
        await handle.start()
        ok = np.ones((1, 4), np.float32)
        assert np.array_equal((await handle.run([("INPUT__0", ok)], None))[0][0][1], ok + 1)
        with pytest.raises(DeviceError, match="out of memory") as oom:
            await handle.run([("INPUT__0", ok * 5000)], None)
        assert "on the device" in oom.value.message
        assert handle.alive  # out of memory leaves the context usable: the worker stays
        assert np.array_equal((await handle.run([("INPUT__0", ok)], None))[0][0][1], ok + 1)
        with pytest.raises(DeviceError, match="illegal memory access"):
            await handle.run([("INPUT__0", -ok)], None)
        for _ in range(100):  # the worker exits by itself once it has answered
            if exits:
                break
            await asyncio.sleep(0.05)
        assert not handle.alive
        await handle.stop()

    asyncio.run(main())
    assert exits == [POISONED_EXIT]


def test_a_gpu_worker_never_runs_on_the_cpu(tmp_path: Path) -> None:
    """provider cuda: on a host without a usable GPU the worker refuses to start and says why;
    with one, the model runs there (this test then checks the device it reports)."""
    path = torch_models.affine(tmp_path)
    onnx_path = tmp_path / "identity.onnx"
    import models

    models.identity_fp32(onnx_path)

    async def main() -> None:
        for model, usable in ((str(path), torch.cuda.is_available()), (str(onnx_path), _ort_cuda_usable())):
            handle = WorkerHandle("gpu", model, SliceSpec("gpu0", 50), provider="cuda")
            try:
                await handle.start()
            except ModelplexError as exc:
                assert not usable, exc
                assert isinstance(exc, DeviceError)
                assert "CUDA" in exc.message and "Traceback" not in exc.message
            else:
                assert usable
            finally:
                await handle.stop()

    asyncio.run(main())


def _ort_cuda_usable() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and shutil.which("nvidia-smi") is not None
