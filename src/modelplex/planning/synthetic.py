"""Synthetic latency profiles from a documented analytic model (labelled "synthetic"; not measured).

GPU-like (an H100 shared with MPS or MIG), slice fraction f of the device, batch b:

    L(b, f) = kernels * launch_s + max(compute, memory)
    compute = 2 * MACs * (b_fill + b / f) / (PEAK_FLOPS * EFFICIENCY)
    memory  = (weight_bytes + b * act_bytes) / (PEAK_BW * min(1, 2 f))

- PEAK_FLOPS = 790e12 (bf16 dense matrix rate measured on an H100), EFFICIENCY = 0.35 (what
  convolution / attention kernels reach of it), PEAK_BW = 3e12 B/s (measured copy rate).
- b_fill = 32 * sqrt(4.1e9 / MACs), clamped to [16, 4096]: the samples whose work fills one
  wave of the whole GPU (ResNet-50 ~32; smaller models expose less parallelism per sample). A
  batch pays for that partly empty wave whatever its size -- occupancy is b / (b + f b_fill) -- so
  a batch the SLO allows wastes much of a whole GPU, and right-sized slices pay.
- a slice can draw up to twice its share of memory bandwidth (memory is not partitioned by MPS).
- kernels * launch_s is the per-kernel launch floor (launch_s = 8 us); weights in bf16
  (2 B/parameter), activations 0.01 B per MAC per sample; p99 = 1.06 x p50.
- features: "dram" = memory time / latency at b = 8 on the whole device; "l2" = min(1, 1.5 dram);
  "dram@b" and "l2@b" the same at each profiled batch b (batch-dependent interference).
- memory: the per-model GPU memory of gpu-let's released code (shared/reference/gpulet.md) as
  `memory_mb`, plus activations of 0.01 B per MAC per sample (`activation_mb_per_item`).
- k worker processes on one slice (MIG + MPS "segments", only in `gpu_profile(..., processes=)`):
  each batch's GPU time is T_k = max(compute with b_fill / k, memory) -- concurrent batches fill
  one another's partly empty wave -- and one round of k batches takes
  L_k = max(kernels * launch_s + T_k, k * T_k): launches overlap the other processes' GPU work,
  GPU work does not overlap. k = 1 is the formula above.

CPU-like (the host as a pool of cores, c cores):

    L(b, c) = 0.2 ms + layers * 20 us + 2 * MACs * b * (0.7 + 0.3 / b) / (50e9 * c / (1 + 0.1 (c - 1)))

(50 GFLOP/s per core, Amdahl-style 10 % loss per extra core, batching saves up to 30 %); p99 = 1.25 x p50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelplex.core.devices import DeviceKind
from modelplex.core.profile import Profile, ProfilePoint
from modelplex.planning.menus import MIG_MENU_SEVENTHS, MPS_MENU_PCT

PEAK_FLOPS = 790e12
EFFICIENCY = 0.35
PEAK_BW = 3e12
LAUNCH_S = 8e-6
ACT_BYTES_PER_MAC = 0.01
BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ModelCost:
    """Per-sample cost of a model, from the widely cited figures in reference/gpulet.md."""

    name: str  # model name
    macs: float  # multiply-accumulates per sample
    params: float  # parameters
    kernels: int  # kernels launched per batch (layer count incl. activations, roughly)
    slo_ms: float  # SLO the gpu-let configs use
    gpu_memory_mb: float = 0.0  # GPU memory of the model in gpu-let's released code (MB)


MODELS: dict[str, ModelCost] = {
    m.name: m
    for m in (
        ModelCost("lenet", 0.4e6, 0.06e6, 8, 5, 50),
        ModelCost("googlenet", 1.5e9, 6.8e6, 80, 66, 1720),
        ModelCost("resnet50", 4.1e9, 25.6e6, 110, 108, 1820),
        ModelCost("ssd-mobilenet", 1.2e9, 6.8e6, 90, 202, 640),
        ModelCost("vgg16", 15.5e9, 138e6, 40, 142, 2920),
        ModelCost("mnasnet", 0.31e9, 3.9e6, 70, 62, 1550),
        ModelCost("mobilenetv2", 0.30e9, 3.5e6, 70, 64, 464),
        ModelCost("densenet161", 7.8e9, 28.7e6, 330, 202, 1220),
        ModelCost("bert", 1.5e9, 110e6, 150, 22, 500),
    )
}


def gpu_latency_s(m: ModelCost, batch: int, fraction: float, processes: int = 1) -> float:
    b_fill = min(4096.0, max(16.0, 32 * math.sqrt(4.1e9 / m.macs)))
    compute = 2 * m.macs * (b_fill / processes + batch / fraction) / (PEAK_FLOPS * EFFICIENCY)
    memory = (2 * m.params + batch * m.macs * ACT_BYTES_PER_MAC) / (PEAK_BW * min(1.0, 2 * fraction))
    gpu_s = max(compute, memory)
    return max(m.kernels * LAUNCH_S + gpu_s, processes * gpu_s)


def _dram_share(m: ModelCost, batch: int) -> float:
    memory = (2 * m.params + batch * m.macs * ACT_BYTES_PER_MAC) / PEAK_BW
    return min(1.0, memory / gpu_latency_s(m, batch, 1.0))


def _gpu_features(m: ModelCost) -> dict[str, float]:
    """"dram"/"l2" at batch 8 (what every reader knows) and "dram@b"/"l2@b" per profiled batch."""
    out = {"dram": round(_dram_share(m, 8), 4), "l2": round(min(1.0, 1.5 * _dram_share(m, 8)), 4)}
    for b in BATCHES:
        out[f"dram@{b}"] = round(_dram_share(m, b), 4)
        out[f"l2@{b}"] = round(min(1.0, 1.5 * _dram_share(m, b)), 4)
    return out


def gpu_profile(name: str, kind: DeviceKind = DeviceKind.GPU_MPS, processes: tuple[int, ...] = (1,)) -> Profile:
    """Synthetic profile of one model on an H100 slice (MPS % or MIG sevenths), with points
    for each process count in `processes` (k processes on one slice at once)."""
    m = MODELS[name]
    sizes, whole = (MPS_MENU_PCT, 100.0) if kind is DeviceKind.GPU_MPS else (MIG_MENU_SEVENTHS, 7.0)
    points = []
    for k in processes:
        for s in sizes:
            for b in BATCHES:
                p50 = gpu_latency_s(m, b, s / whole, k) * 1e3
                points.append(ProfilePoint(s, b, round(p50, 5), round(p50 * 1.06, 5), round(k * b / p50 * 1e3, 2), 0, k))
    return Profile(
        model=name,
        device_kind=kind.value,
        hardware="synthetic H100 (analytic model, not measured)",
        points=tuple(points),
        memory_mb=m.gpu_memory_mb,
        features=_gpu_features(m),
        activation_mb_per_item=round(m.macs * ACT_BYTES_PER_MAC / 1e6, 3),
    )


def cpu_latency_s(m: ModelCost, batch: int, cores: int) -> float:
    speedup = cores / (1 + 0.1 * (cores - 1))
    return 0.2e-3 + m.kernels * 20e-6 + 2 * m.macs * batch * (0.7 + 0.3 / batch) / (50e9 * speedup)


def cpu_profile(name: str, cores: int) -> Profile:
    """Synthetic profile of one model on 1..cores CPU cores."""
    m = MODELS[name]
    points = []
    for c in range(1, cores + 1):
        for b in BATCHES:
            p50 = cpu_latency_s(m, b, c) * 1e3
            points.append(ProfilePoint(c, b, round(p50, 5), round(p50 * 1.25, 5), round(b / p50 * 1e3, 2), 0))
    return Profile(
        model=name,
        device_kind=DeviceKind.CPU.value,
        hardware=f"synthetic CPU x{cores} cores (analytic model, not measured)",
        points=tuple(points),
    )


def gpu_profiles(names: list[str] | None = None, mig_processes: tuple[int, ...] = (1,)) -> list[Profile]:
    """MPS and MIG profiles of the named models (all when None); MIG ones with points for each
    process count in `mig_processes` (segments)."""
    chosen = names or list(MODELS)
    return [gpu_profile(n, DeviceKind.GPU_MPS) for n in chosen] + [gpu_profile(n, DeviceKind.GPU_MIG, mig_processes) for n in chosen]
