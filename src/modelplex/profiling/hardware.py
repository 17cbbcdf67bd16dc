"""What this host is: the hardware signature profiles are keyed by, and which devices it has."""

from __future__ import annotations

import os
from dataclasses import dataclass

from modelplex.runtime.gpu import gpu_names


@dataclass(frozen=True)
class HostInfo:
    """The devices profiling can measure on this host."""

    cpu_model: str  # "model name" of /proc/cpuinfo (or the platform's processor string)
    cpus: tuple[int, ...]  # cores this process may use; a k-core slice is the first k of them
    gpu_names: tuple[str, ...] = ()  # one entry per GPU nvidia-smi lists; empty without a GPU

    @property
    def cpu_signature(self) -> str:
        """Hardware signature of CPU profiles, e.g. "AMD EPYC x2" (model name and core count)."""
        return f"{self.cpu_model} x{len(self.cpus)}"

    def gpu_signature(self, index: int = 0) -> str:
        """Hardware signature of GPU profiles: the GPU's name (all MPS shares of one kind of GPU)."""
        return self.gpu_names[index]


def cpu_model_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Processor", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown-cpu"


def available_cpus() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def detect_host() -> HostInfo:
    return HostInfo(cpu_model=cpu_model_name(), cpus=available_cpus(), gpu_names=tuple(gpu_names()))
