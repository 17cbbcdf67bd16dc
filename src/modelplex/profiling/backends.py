"""Where profiling runs a model: a CPU slice (cores) or, with `--gpus`, an MPS share of a GPU.

A backend names the slice sizes it can measure and starts a real worker process bound to one
slice; everything else (timing, statistics, storage) is the same for every backend.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelplex.core.devices import DeviceKind, SliceSpec
from modelplex.core.errors import InvalidArgumentError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.profiling.hardware import HostInfo
from modelplex.runtime.gpu import GpuShares, worker_env
from modelplex.runtime.worker_handle import WorkerHandle, WorkerInfo

MPS_MENU_PCT = (20, 40, 50, 60, 80, 100)  # GPU slice menu of the gpu-let reference (% of SMs)


class SliceBackend(Protocol):
    """Starts workers bound to slices of one device."""

    device_kind: str  # DeviceKind value of the profiles it produces
    hardware: str  # hardware signature of the profiles it produces
    capacity: int  # whole-device size in slice units (cores or 100 %)

    def default_sizes(self) -> list[int]: ...

    def check_size(self, size: int) -> None: ...

    def slice_spec(self, size: int) -> SliceSpec: ...

    async def start(self, label: str, model_path: str, spec: SliceSpec) -> tuple[WorkerHandle, WorkerInfo]: ...

    def pair_sides(self) -> tuple["PairSide", "PairSide"]: ...

    def pair_fraction(self) -> float: ...


@dataclass(frozen=True)
class PairSide:
    """Where one side of an interference pair runs: its core, its device and its environment."""

    cpu: int  # the core its load process is pinned to
    provider: str  # "cpu" or "cuda"
    env: dict[str, str] = field(default_factory=dict)  # e.g. the MPS share of a GPU side


class CpuBackend:
    """A k-core slice is the host's first k usable cores; ONNX Runtime gets k threads."""

    device_kind = DeviceKind.CPU.value

    def __init__(self, host: HostInfo) -> None:
        self.host = host  # the host whose cores are sliced
        self.hardware = host.cpu_signature  # e.g. "AMD EPYC x2"
        self.capacity = len(host.cpus)  # cores of the whole device

    def default_sizes(self) -> list[int]:
        return list(range(1, self.capacity + 1))

    def check_size(self, size: int) -> None:
        if size < 1 or size > self.capacity:
            raise InvalidArgumentError(
                f"slice size {size} is not possible on this host: it has {self.capacity} usable cores "
                f"(use sizes 1..{self.capacity})"
            )

    def slice_spec(self, size: int) -> SliceSpec:
        self.check_size(size)
        return SliceSpec("cpu0", size, tuple(self.host.cpus[:size]))

    async def start(self, label: str, model_path: str, spec: SliceSpec) -> tuple[WorkerHandle, WorkerInfo]:
        handle = WorkerHandle(label, model_path, spec, threads=spec.size, provider="cpu")
        info = await handle.start()
        return handle, info

    def pair_sides(self) -> tuple[PairSide, PairSide]:
        """Two 1-core slices: the host's first two cores."""
        return PairSide(self.host.cpus[0], "cpu", {}), PairSide(self.host.cpus[1 % len(self.host.cpus)], "cpu", {})

    def pair_fraction(self) -> float:
        return 1 / self.capacity


class GpuMpsBackend:
    """One MPS share of one GPU per worker (runtime.gpu.worker_env: the GPU and
    CUDA_MPS_ACTIVE_THREAD_PERCENTAGE), the model on its GPU engine (ONNX Runtime's CUDA provider
    or PyTorch). A worker whose model does not really run on the GPU refuses to start with a
    DeviceError (the profiler skips that model, saying why); it never measures the CPU instead."""

    device_kind = DeviceKind.GPU_MPS.value
    capacity = 100

    def __init__(self, host: HostInfo, index: int = 0, shares: GpuShares | None = None) -> None:
        self.host = host  # the host the GPU is in
        self.index = index  # which GPU (nvidia-smi order)
        self.shares = shares  # the host's GPUs and how each is shared (None: shares are not enforced)
        self.hardware = host.gpu_signature(index)  # the GPU's name

    def default_sizes(self) -> list[int]:
        return list(MPS_MENU_PCT)

    def check_size(self, size: int) -> None:
        if not 1 <= size <= 100:
            raise InvalidArgumentError(f"GPU slice size {size} must be a percentage in 1..100")

    def slice_spec(self, size: int) -> SliceSpec:
        self.check_size(size)
        return SliceSpec(f"gpu{self.index}", size)

    async def start(self, label: str, model_path: str, spec: SliceSpec) -> tuple[WorkerHandle, WorkerInfo]:
        handle = WorkerHandle(label, model_path, spec, threads=1, provider="cuda", env=worker_env(spec, self.shares))
        info = await handle.start()
        return handle, info

    def pair_sides(self) -> tuple[PairSide, PairSide]:
        """Two halves of the GPU, each driven from its own core."""
        env = worker_env(SliceSpec(f"gpu{self.index}", 50), self.shares)
        cpus = self.host.cpus
        return PairSide(cpus[0], "cuda", env), PairSide(cpus[1 % len(cpus)], "cuda", env)

    def pair_fraction(self) -> float:
        return 0.5


def gpu_backend(host: HostInfo, shares: GpuShares | None, index: int = 0) -> GpuMpsBackend:
    """The backend of GPU `index`, or one readable line why there is none."""
    if not host.gpu_names:
        why = "nvidia-smi not found" if shutil.which("nvidia-smi") is None else "nvidia-smi lists no GPU"
        raise UnavailableError(f"no NVIDIA GPU: {why}")
    if not 0 <= index < len(host.gpu_names):
        raise InvalidArgumentError(f"no GPU {index}: this host has {len(host.gpu_names)}")
    return GpuMpsBackend(host, index, shares)


def gpu_skips(configs: Sequence[ModelConfig]) -> dict[str, str]:
    """Models that cannot run on the GPU here, known without starting a worker, with the reason:
    ONNX models when ONNX Runtime has no CUDA provider, PyTorch models when torch is missing.
    (A model that fails on the GPU otherwise is skipped when its worker refuses to start.)"""
    from modelplex.repository.config_torch import TORCH_PLATFORM

    skips: dict[str, str] = {}
    onnx_cuda = _onnx_has_cuda()
    has_torch = importlib.util.find_spec("torch") is not None
    for c in configs:
        if c.platform == TORCH_PLATFORM and not has_torch:
            skips[c.model.name] = "a PyTorch model, and torch is not installed (pip install 'modelplex[torch]')"
        elif c.platform != TORCH_PLATFORM and not onnx_cuda:
            skips[c.model.name] = ("an ONNX model, and ONNX Runtime has no CUDA provider here "
                                   "(pip install 'modelplex[gpu]', or serve it as a PyTorch model)")
    return skips


def _onnx_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()
