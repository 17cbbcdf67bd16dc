"""GPU slices: which share of which GPU a worker process gets, as its environment.

A GPU device here is a whole GPU ("gpu0") or an existing MIG instance ("gpu0-mig3"), addressed
by its UUID (GPU-... / MIG-...) with CUDA_DEVICE_ORDER=PCI_BUS_ID, never by index. A slice of it
is a percent share, given by the mechanism the host offers (see runtime/gpu_probe.py):
- "mps" / "mig+mps": an MPS client with CUDA_MPS_ACTIVE_THREAD_PERCENTAGE and
  CUDA_MPS_PINNED_DEVICE_MEM_LIMIT ("0=<MiB>M": the worker sees only its device, as device 0);
- "green": MODELPLEX_GREEN_SMS, which the worker turns into a CUDA green context
  (runtime/gpu_green.enter_green_context);
- "mig" / "whole": no sharing; only a whole-device slice (100 %) is accepted.
Every GPU worker also gets MODELPLEX_GPU_MEM_MB, its share of the device memory, for the
engine's own limit (ONNX Runtime gpu_mem_limit, PyTorch's caching-allocator fraction).
Everything here runs without a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.runtime.gpu_green import GREEN_ENV, green_sm_count
from modelplex.runtime.gpu_mps import MpsDaemon
from modelplex.runtime.gpu_smi import Runner, query_gpus, run_command

log = logging.getLogger(__name__)

MPS, MIG_MPS, GREEN, MIG, WHOLE = "mps", "mig+mps", "green", "mig", "whole"
SHARING = (MPS, MIG_MPS, GREEN)  # mechanisms that give a worker less than its whole device

__all__ = ["GpuShares", "GpuTarget", "MpsDaemon", "gpu_devices", "gpu_names", "worker_env"]


@dataclass(frozen=True)
class GpuTarget:
    """One device workers can be placed on and how it is shared."""

    device_id: str  # plan device id: "gpu0", or "gpu0-mig3" for a MIG instance
    uuid: str  # GPU-... or MIG-...
    name: str  # e.g. "NVIDIA H200" or "NVIDIA H200 MIG 3g.71gb"
    mechanism: str  # mps, mig+mps, green, mig, whole
    memory_mb: int  # device (or instance) memory, MiB
    sm_count: int = 0  # SMs of the device (green contexts; 0 = unknown)
    gpu_model: str = ""  # planning/mig.py key, e.g. "h200-141gb" ("" = unknown)
    daemon: MpsDaemon | None = None  # the MPS daemon its workers attach to (mps, mig+mps)

    def device(self) -> DeviceSpec:
        return DeviceSpec(self.device_id, DeviceKind.GPU_MPS, 100, self.name, self.memory_mb, self.gpu_model)

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "uuid": self.uuid, "name": self.name, "mechanism": self.mechanism,
                "memory_mb": self.memory_mb, "sm_count": self.sm_count,
                "mps_pipe_dir": str(self.daemon.pipe_dir) if self.daemon is not None else None}


@dataclass
class GpuShares:
    """This server's GPU devices, how each is shared, and the MPS daemons it runs."""

    targets: dict[str, GpuTarget] = field(default_factory=dict)  # device id -> target
    report: dict[str, Any] = field(default_factory=dict)  # the probe, for status (GpuProbe.to_json)

    def devices(self) -> list[DeviceSpec]:
        return [t.device() for t in self.targets.values()]

    def daemons(self) -> list[MpsDaemon]:
        seen: dict[int, MpsDaemon] = {}
        for t in self.targets.values():
            if t.daemon is not None:
                seen.setdefault(id(t.daemon), t.daemon)
        return list(seen.values())

    def devices_of(self, daemon: MpsDaemon) -> list[str]:
        """Device ids whose workers are clients of `daemon` (all restart after its server faults)."""
        return [t.device_id for t in self.targets.values() if t.daemon is daemon]

    def close(self) -> None:
        """Stop the MPS daemons this server started (never one it found running)."""
        for d in self.daemons():
            d.stop()

    def status(self) -> dict[str, Any]:
        return {**self.report, "devices": [t.to_json() for t in self.targets.values()]}


def worker_env(slice_spec: SliceSpec, shares: GpuShares | None) -> dict[str, str]:
    """Environment of a worker on `slice_spec`: nothing for a CPU slice; for a GPU slice its
    device by UUID, its share (MPS percent and pinned memory, or green-context SMs) and memory.
    Without `shares` (nothing probed, e.g. profiling a GPU the host could not share), the GPU by
    index and nothing enforced: the worker itself then says whether it can use the device."""
    if slice_spec.cpus or not slice_spec.device_id.startswith("gpu"):
        return {}
    if not 0 < slice_spec.size <= 100:
        raise InvalidArgumentError(f"GPU slice of {slice_spec.size} % is not a share of one GPU")
    if shares is None:
        return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": slice_spec.device_id.removeprefix("gpu")}
    target = shares.targets.get(slice_spec.device_id) if shares is not None else None
    if target is None:
        known = ", ".join(shares.targets) if shares is not None and shares.targets else "none"
        raise InvalidArgumentError(f"GPU slice on {slice_spec.device_id}: no such GPU device here (devices: {known})")
    mem_mb = target.memory_mb * slice_spec.size // 100
    env = {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": target.uuid,
        "MODELPLEX_GPU_UUID": target.uuid,
        "MODELPLEX_GPU_MECHANISM": target.mechanism,
        "MODELPLEX_GPU_MEM_MB": str(mem_mb),
    }
    if target.mechanism in (MPS, MIG_MPS) and target.daemon is not None:
        env.update(target.daemon.env)
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(slice_spec.size)
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = pinned_mem_limit(mem_mb)
    elif target.mechanism == GREEN and slice_spec.size < 100:
        if target.sm_count <= 0:
            raise InvalidArgumentError(f"GPU {target.uuid}: SM count unknown, cannot size a green context")
        env[GREEN_ENV] = str(green_sm_count(slice_spec.size, target.sm_count))
    elif slice_spec.size < 100 and target.mechanism not in SHARING:
        raise InvalidArgumentError(
            f"GPU slice {slice_spec.label}: {target.uuid} cannot be shared here (no MPS, no green contexts); "
            "only whole-device slices"
        )
    return env


def pinned_mem_limit(mem_mb: int) -> str:
    """CUDA_MPS_PINNED_DEVICE_MEM_LIMIT of a client that sees one device (device 0): "0=<N>M"."""
    if mem_mb <= 0:
        raise InvalidArgumentError("an MPS memory limit must be positive")
    return f"0={mem_mb}M"


def gpu_names(runner: Runner = run_command) -> list[str]:
    """Names of the GPUs nvidia-smi lists; empty without a GPU or driver (not an error)."""
    gpus, why = query_gpus(runner)
    if why:
        log.debug("%s", why)
    return [g.name for g in gpus]


def gpu_devices(names: list[str]) -> list[DeviceSpec]:
    """One MPS-sliceable device per GPU name (slice sizes in % of SMs), for planning."""
    return [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100, name) for i, name in enumerate(names)]
