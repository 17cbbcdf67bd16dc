"""Where profiling runs a model: a CPU slice (cores) or, when a GPU is present, an MPS share.

A backend names the slice sizes it can measure and starts a real worker process bound to one
slice; everything else (timing, statistics, storage) is the same for every backend.
"""

from __future__ import annotations

import os
from typing import Protocol

from modelplex.core.devices import DeviceKind, SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.profiling.hardware import HostInfo
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


class GpuMpsBackend:
    """One MPS share of GPU 0 per worker (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE), CUDA provider.

    Needs an MPS control daemon and onnxruntime with the CUDA provider; without them the worker
    falls back to the CPU provider, so the caller must treat results as unverified. Not measured
    on the development host (it has no GPU).
    """

    device_kind = DeviceKind.GPU_MPS.value
    capacity = 100

    def __init__(self, host: HostInfo, index: int = 0) -> None:
        self.host = host  # the host the GPU is in
        self.index = index  # which GPU (nvidia-smi order)
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
        # WorkerHandle passes this process's environment on: set the share just for the spawn.
        saved = {k: os.environ.get(k) for k in ("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_VISIBLE_DEVICES")}
        os.environ["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(spec.size)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(self.index)
        try:
            handle = WorkerHandle(label, model_path, spec, threads=1, provider="cuda")
            info = await handle.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return handle, info
