"""Devices and the slices they are cut into."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DeviceKind(enum.Enum):
    """What a device is; decides its slice menu."""

    CPU = "cpu"  # the host CPU as a pool of cores; slice size = cores
    GPU_MPS = "gpu-mps"  # a GPU shared with MPS; slice size = % of SMs
    GPU_MIG = "gpu-mig"  # a GPU cut into MIG instances; slice size = compute sevenths


@dataclass(frozen=True)
class DeviceSpec:
    """One physical accelerator, or the host CPU."""

    device_id: str  # stable id, e.g. "cpu0", "gpu1"
    kind: DeviceKind  # how it can be sliced
    capacity: int  # whole-device size in the kind's unit: cores, 100 (%), or 7 (MIG sevenths)
    name: str = ""  # hardware name, e.g. "NVIDIA H100 80GB HBM3"
    memory_mb: int = 0  # memory available to models on this device (0 = not limited)
    gpu_model: str = ""  # GPU model key of the MIG and memory tables, e.g. "a100-80gb" ("" = h100-80gb)


@dataclass(frozen=True)
class SliceSpec:
    """A spatial share of one device: the unit that runs work."""

    device_id: str  # device this slice is cut from
    size: int  # in the device kind's unit (cores, %, MIG sevenths)
    cpus: tuple[int, ...] = ()  # CPU slices: the exact cores (affinity); empty for GPU slices
    mig_start: int = -1  # MIG slices: first memory slice of the instance (-1 = not MIG / not placed)

    @property
    def label(self) -> str:
        if self.cpus:
            return f"{self.device_id}:cpus={','.join(map(str, self.cpus))}"
        return f"{self.device_id}:{self.size}"
