"""Model backends of a slice worker: ONNX Runtime and PyTorch behind one small seam.

An Engine holds one loaded model on one device: `run` takes named input arrays and returns the
asked outputs as arrays; `warm_up` runs it before the worker says ready; `device` says where it
really runs. Which engine loads a file is decided by its name: `.onnx` -> ONNX Runtime, `.pt`
(TorchScript, Triton's pytorch_libtorch) and `.pt2` (torch.export) -> PyTorch, whose inputs and
outputs come from the model's config.pbtxt (repository.config_torch).

On a GPU (`provider="cuda"`) an engine verifies that the device is really in use -- ONNX Runtime's
session lists CUDAExecutionProvider, the PyTorch model's parameters and outputs are on a cuda
device -- and raises DeviceUnusableError otherwise: a GPU worker never runs silently on one CPU
thread. The GPU-only branches are small and logged; CI runs everything else on the CPU.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

GPU_MEM_ENV = "MODELPLEX_GPU_MEM_MB"  # a slice's GPU memory limit in MiB (set by the worker's env)
MPS_MEM_ENV = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"  # MPS's per-client limit, e.g. "0=4096M"
WARMUP_RUNS = 2  # untimed runs before ready (TorchScript's profiling executor optimises on the first two)


class DeviceUnusableError(RuntimeError):
    """The device a worker was told to use is not the one its model runs on (or not there)."""


class Engine(Protocol):
    """One model loaded on one device."""

    kind: str  # "onnx" or "torch" (the fault classifier reads it)
    outputs: list[str]  # every output name, in the model's order

    def run(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]: ...

    def warm_up(self) -> None: ...

    def device(self) -> str: ...


def gpu_mem_limit_bytes(env: Mapping[str, str]) -> int | None:
    """A slice's GPU memory limit from the worker's environment: MODELPLEX_GPU_MEM_MB, else MPS's
    CUDA_MPS_PINNED_DEVICE_MEM_LIMIT (first device; "4G", "4096M" or "0=4096M,1=2G"); None = none."""
    mb = env.get(GPU_MEM_ENV, "").strip()
    if mb:
        try:
            value = float(mb)
        except ValueError:
            raise ValueError(f"{GPU_MEM_ENV}={mb!r} is not a number of MiB") from None
        return int(value * 2**20) if value > 0 else None
    pinned = env.get(MPS_MEM_ENV, "").strip()
    if not pinned:
        return None
    first = pinned.split(",")[0].split("=")[-1].strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)B?", first, re.IGNORECASE)
    if m is None:
        raise ValueError(f"{MPS_MEM_ENV}={pinned!r}: expected sizes like 4096M or 0=4G")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def engine_kind(path: str) -> str:
    """Which engine loads a model file: "torch" for .pt / .pt2 files, else "onnx"."""
    return "torch" if Path(path).suffix in (".pt", ".pt2") else "onnx"


def load_engine(path: str, threads: int, provider: str = "cpu", mem_limit: int | None = None) -> Engine:
    """Load a model file into the engine its name calls for, on `provider` ("cpu" or "cuda")."""
    if engine_kind(path) == "torch":
        from modelplex.repository.config_torch import torch_signature
        from modelplex.runtime.engines_torch import TorchEngine

        inputs, outputs = torch_signature(Path(path))
        return TorchEngine(path, inputs, outputs, threads, provider, mem_limit)
    return OnnxEngine(path, threads, provider, mem_limit)


def make_session(path: str, threads: int, provider: str = "cpu", mem_limit: int | None = None) -> Any:
    """An ONNX Runtime session sized to the slice (used by the worker and the profiler)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeviceUnusableError(onnxruntime_missing() or "onnxruntime cannot be imported") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would steal the cores the frontend and neighbouring slices need.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    # No arena: what a burst of large batches took goes back to malloc, and the idle worker hands
    # it to the system (heap.trim); an arena would keep its peak until the worker exits.
    opts.enable_cpu_mem_arena = False
    if provider != "cuda":
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise DeviceUnusableError(
            f"onnxruntime {ort.__version__} has no CUDA provider (it offers {', '.join(ort.get_available_providers())}): "
            "install onnxruntime-gpu (pip install 'modelplex[gpu]') or serve a PyTorch model"
        )
    cuda: dict[str, Any] = {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"}
    if mem_limit:
        cuda["gpu_mem_limit"] = int(mem_limit)
    log.info("ONNX Runtime on CUDA: %s (memory limit %s)", path, f"{mem_limit / 2**20:.0f} MiB" if mem_limit else "none")
    return ort.InferenceSession(path, sess_options=opts,
                                providers=[("CUDAExecutionProvider", cuda), "CPUExecutionProvider"])


class OnnxEngine:
    """An ONNX Runtime session (CPU provider, or CUDA with the CPU one for unsupported nodes)."""

    kind = "onnx"

    def __init__(self, path: str, threads: int, provider: str = "cpu", mem_limit: int | None = None) -> None:
        self.provider = provider  # "cpu" or "cuda"
        self.session = make_session(path, threads, provider, mem_limit)
        if provider == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise DeviceUnusableError(
                f"ONNX Runtime did not put {path} on the GPU: the session's providers are "
                f"{', '.join(self.session.get_providers())} (CUDA libraries missing or no device visible?)"
            )
        self.outputs = [o.name for o in self.session.get_outputs()]  # all output names, graph order
        self.string_inputs = {i.name for i in self.session.get_inputs() if i.type == "tensor(string)"}

    def run(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> list[np.ndarray]:
        inputs: dict[str, Any] = {}
        for name, arr in feeds.items():
            if name in self.string_inputs:
                arr = np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])(arr)
            inputs[name] = arr
        return [np.asarray(r) for r in self.session.run(list(names), inputs)]

    def warm_up(self) -> None:
        """On the GPU, run once on zeros so the first request does not pay for CUDA's start
        (kernels, cuDNN/cuBLAS handles); on the CPU the session is ready as it is."""
        if self.provider != "cuda" or self.string_inputs:
            return
        from modelplex.core.tensors import DataType

        feeds: dict[str, np.ndarray] = {}
        for i in self.session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in (i.shape or ())]
            feeds[i.name] = np.zeros(shape, dtype=DataType.from_onnx(i.type).numpy)
        for _ in range(WARMUP_RUNS):
            self.run(feeds, self.outputs)

    def device(self) -> str:
        return "cuda (ONNX Runtime CUDA provider)" if self.provider == "cuda" else "cpu (ONNX Runtime)"


def onnxruntime_missing() -> str | None:
    """One line saying how to install ONNX Runtime when no wheel of it is importable (modelplex
    installs it only through an extra), else None."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        return None
    return ("ONNX Runtime is not installed: pip install 'modelplex[cpu]' (onnxruntime) or "
            "'modelplex[gpu]' (onnxruntime-gpu; never both)")


def env_mem_limit() -> int | None:
    """This process's slice memory limit (gpu_mem_limit_bytes of os.environ)."""
    return gpu_mem_limit_bytes(os.environ)
