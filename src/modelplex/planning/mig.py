"""Exact MIG placement per GPU model: which instance sizes may start where (pure data + search).

A MIG-capable GPU has 7 compute slices (GPCs) and 8 memory slices. A GPU instance profile
occupies a fixed number of *memory* slices and may only start at the memory-slice indices of
its placement table (`nvidia-smi mig -lgipp`, NVML `nvmlGpuInstancePlacement_t`: start = index
of the first occupied memory slice, size = memory slices occupied). A layout is valid when every
instance has a start of its own table and no two instances share a memory slice. So 3g+3g is
valid (starts 0 and 4, four memory slices each) and takes the whole GPU: 3g+3g+1g is refused,
although its sizes sum to 7. The tables below are the default (non "+me", not "1g.20gb")
profile of each compute size; A100 and H100/H200 share one placement table:

    1g: 1 memory slice,  starts 0..6       2g: 2 memory slices, starts 0, 2, 4
    3g: 4 memory slices, starts 0, 4       4g: 4 memory slices, start 0       7g: all 8, start 0

Instance memory (`memory_mb`) is what `nvidia-smi mig -lgip` reports (GiB x 1024) for the A100
and H100; the H200's is the nominal GB of its profile names (its `-lgip` figures were not at hand).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import InvalidArgumentError

MEMORY_SLICES = 8  # memory slices of every MIG-capable GPU in the tables
_STARTS: dict[int, tuple[int, tuple[int, ...]]] = {  # compute size -> (memory slices, starts)
    1: (1, (0, 1, 2, 3, 4, 5, 6)),
    2: (2, (0, 2, 4)),
    3: (4, (0, 4)),
    4: (4, (0,)),
    7: (8, (0,)),
}


@dataclass(frozen=True)
class MigProfile:
    """One GPU instance profile of one GPU model."""

    name: str  # profile name, e.g. "3g.40gb"
    compute_slices: int  # GPCs: the slice size plans use (1, 2, 3, 4, 7)
    memory_slices: int  # memory slices the instance occupies (of 8)
    starts: tuple[int, ...]  # memory-slice indices where the instance may start
    memory_mb: float  # device memory usable inside the instance (MB)


@dataclass(frozen=True)
class GpuModel:
    """A GPU model: its memory and, when MIG-capable, its instance profiles."""

    key: str  # short key used in device specs, e.g. "h100-80gb"
    name: str  # marketing name, e.g. "NVIDIA H100 80GB"
    memory_mb: float  # device memory usable by processes without MIG (MB)
    mig: tuple[MigProfile, ...]  # MIG instance profiles by compute size (empty: no MIG)

    def profile(self, size: int) -> MigProfile | None:
        return next((p for p in self.mig if p.compute_slices == size), None)


def _mig(gib: dict[int, float], names: dict[int, str]) -> tuple[MigProfile, ...]:
    return tuple(
        MigProfile(names[size], size, _STARTS[size][0], _STARTS[size][1], round(gib[size] * 1024.0, 1)) for size in sorted(_STARTS)
    )


GPU_MODELS: dict[str, GpuModel] = {
    m.key: m
    for m in (
        GpuModel(
            "a100-40gb", "NVIDIA A100 40GB", 40960.0,
            _mig({1: 4.75, 2: 9.75, 3: 19.62, 4: 19.62, 7: 39.5}, {1: "1g.5gb", 2: "2g.10gb", 3: "3g.20gb", 4: "4g.20gb", 7: "7g.40gb"}),
        ),
        GpuModel(
            "a100-80gb", "NVIDIA A100 80GB", 81920.0,
            _mig({1: 9.5, 2: 19.5, 3: 39.25, 4: 39.25, 7: 79.25}, {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}),
        ),
        GpuModel(
            "h100-80gb", "NVIDIA H100 80GB", 81920.0,
            _mig({1: 9.75, 2: 19.62, 3: 39.5, 4: 39.5, 7: 79.25}, {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}),
        ),
        GpuModel(
            "h200-141gb", "NVIDIA H200 141GB", 144384.0,
            _mig({1: 18.0, 2: 35.0, 3: 71.0, 4: 71.0, 7: 141.0}, {1: "1g.18gb", 2: "2g.35gb", 3: "3g.71gb", 4: "4g.71gb", 7: "7g.141gb"}),
        ),
        GpuModel("rtx2080ti", "NVIDIA GeForce RTX 2080 Ti", 11264.0, ()),
    )
}
DEFAULT_GPU_MODEL = "h100-80gb"  # the model a GPU device spec without one is taken to be


def gpu_model(key: str) -> GpuModel:
    """The table entry of a GPU model key ("" = the default); InvalidArgumentError if unknown."""
    found = GPU_MODELS.get((key or DEFAULT_GPU_MODEL).lower())
    if found is None:
        raise InvalidArgumentError(f"unknown GPU model {key!r}; known: {', '.join(GPU_MODELS)}")
    return found


def device_model(device: DeviceSpec) -> GpuModel:
    """The GPU model of a device (the default when the spec names none)."""
    return gpu_model(device.gpu_model)


def mig_placement(model: GpuModel, sizes: Sequence[int]) -> tuple[int, ...] | None:
    """Start memory slice of each instance (in the order given), or None when the hardware
    refuses the layout. Exhaustive search, largest instances first (at most 7 instances)."""
    return _placement(model, tuple(sizes))


@functools.lru_cache(maxsize=8192)
def _placement(model: GpuModel, sizes: tuple[int, ...]) -> tuple[int, ...] | None:
    profiles: list[MigProfile] = []
    for size in sizes:
        prof = model.profile(size)
        if prof is None:
            return None
        profiles.append(prof)
    if sum(p.memory_slices for p in profiles) > MEMORY_SLICES:
        return None
    order = sorted(range(len(profiles)), key=lambda i: (-profiles[i].memory_slices, i))
    starts = [-1] * len(profiles)

    def search(k: int, used: int) -> bool:
        if k == len(order):
            return True
        prof = profiles[order[k]]
        for start in prof.starts:
            mask = ((1 << prof.memory_slices) - 1) << start
            if start + prof.memory_slices <= MEMORY_SLICES and not used & mask:
                starts[order[k]] = start
                if search(k + 1, used | mask):
                    return True
        return False

    return tuple(starts) if search(0, 0) else None


def check_mig_starts(model: GpuModel, placed: Sequence[tuple[int, int]]) -> str | None:
    """Problem with explicit (size, start) instances on one GPU, or None when the GPU accepts them."""
    used = 0
    for size, start in placed:
        prof = model.profile(size)
        if prof is None:
            return f"no {size}g MIG profile on {model.name}"
        if start not in prof.starts:
            return f"{prof.name} cannot start at memory slice {start} (allowed: {', '.join(map(str, prof.starts))})"
        mask = ((1 << prof.memory_slices) - 1) << start
        if used & mask:
            return f"{prof.name} at memory slice {start} overlaps another instance"
        used |= mask
    return None


def slice_memory_mb(device: DeviceSpec, size: int) -> float:
    """Device memory a MIG instance of `size` holds on this device's GPU model (0 = unknown)."""
    prof = device_model(device).profile(size)
    return prof.memory_mb if prof is not None else 0.0


def model_key_for(name: str, memory_mb: int = 0) -> str:
    """The table key of a GPU by its nvidia-smi name and memory ("" when not in the tables)."""
    low = name.lower()
    if "h200" in low:
        return "h200-141gb"
    if "h100" in low:
        return "h100-80gb"
    if "a100" in low:
        return "a100-80gb" if memory_mb > 50_000 or "80gb" in low else "a100-40gb"
    return "rtx2080ti" if "2080 ti" in low else ""


def mig_commands(devices: Sequence[DeviceSpec], placed: dict[str, list[tuple[int, int]]]) -> list[str]:
    """The `nvidia-smi mig` commands an operator runs to make a planned layout (modelplex never
    runs them): per GPU, its (size, start) instances, created in order of their start with
    their compute instance (-C). Lines starting with "#" are comments. `placed` maps device id
    -> (size, start) of each instance; device ids "gpuN" give the nvidia-smi index N."""
    lines = ["# MIG layout of the plan: run as root, GPUs idle, MIG mode already on (nvidia-smi -i N -mig 1)"]
    for dev in devices:
        inst = sorted(placed.get(dev.device_id, []), key=lambda p: p[1])
        if not inst:
            continue
        model = device_model(dev)
        problem = check_mig_starts(model, inst)
        if problem is not None:
            raise InvalidArgumentError(f"{dev.device_id}: {problem}")
        index = dev.device_id.removeprefix("gpu")
        names = []
        for size, _ in inst:
            prof = model.profile(size)
            names.append(prof.name if prof is not None else f"{size}g")
        where = ", ".join(f"{n} at memory slice {s}" for n, (_, s) in zip(names, inst))
        lines.append(f"# {dev.device_id} ({model.name}): {where}")
        lines.append(f"nvidia-smi mig -i {index} -cgi {','.join(names)} -C")
        lines.append(f"nvidia-smi mig -i {index} -lgi  # check: Placement Start:Size as planned")
    return lines
