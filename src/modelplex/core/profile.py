"""Measured latency of a model per (slice size, batch, processes) and the features interference
needs. `processes` k > 1 is a "segment": k worker processes running batches on one slice at once
(MPS inside a MIG instance or an MPS share); its latency is that of one batch while all k run."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProfilePoint:
    """One measured (slice size, batch, processes) point of one model on one kind of device."""

    slice_size: int  # cores (CPU) or % / sevenths (GPU)
    batch: int  # batch size run
    p50_ms: float  # median latency of one batch
    p99_ms: float  # 99th percentile latency of one batch
    throughput_rps: float = 0.0  # inferences per second at this point, all processes together
    samples: int = 0  # number of timed runs behind the statistics
    processes: int = 1  # worker processes running batches on the slice at once


@dataclass(frozen=True)
class Profile:
    """All measured points of one model (variant) on one hardware signature."""

    model: str  # model (or variant) name
    device_kind: str  # DeviceKind value the points were measured on
    hardware: str = ""  # hardware signature, e.g. "Intel Xeon x2" or "NVIDIA H100"
    points: tuple[ProfilePoint, ...] = ()  # measured points, any order
    memory_mb: float = 0.0  # resident memory of a worker holding this model (weights, workspace)
    load_s: float = 0.0  # time to start a worker and load the model
    # solo-run interference features at full device (0..1 utilisation-like), scaled by slice
    features: dict[str, float] = field(default_factory=dict)
    activation_mb_per_item: float = 0.0  # extra device memory per sample of a batch (activations, I/O)
    max_batch: int = 0  # largest batch the variant accepts (0 = no limit of its own)

    def slice_sizes(self) -> list[int]:
        return sorted({p.slice_size for p in self.points})

    def batches(self, slice_size: int) -> list[int]:
        return sorted({p.batch for p in self.points if p.slice_size == slice_size})

    def process_counts(self) -> list[int]:
        """Process counts measured (1 is always planned; others only where measured)."""
        return sorted({p.processes for p in self.points} | {1})

    def latency_ms(self, slice_size: float, batch: int, quantile: str = "p50", processes: int = 1) -> float:
        """Latency of one batch, measured or interpolated (see LatencyTable)."""
        return self.table(quantile, processes).latency_ms(slice_size, batch)

    def table(self, quantile: str = "p50", processes: int = 1) -> "LatencyTable":
        """The interpolation table of one quantile and process count, built once per profile."""
        cache: dict[tuple[str, int], LatencyTable] = self.__dict__.setdefault("_tables", {})
        key = (quantile, processes)
        if key not in cache:
            cache[key] = LatencyTable(self, quantile, processes)
        return cache[key]

    def memory_needed_mb(self, batch: int) -> float:
        """Device memory of this model in one worker running batches of `batch` (no context)."""
        return self.memory_mb + batch * self.activation_mb_per_item

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "device_kind": self.device_kind,
            "hardware": self.hardware,
            "memory_mb": self.memory_mb,
            "load_s": self.load_s,
            "features": dict(self.features),
            "activation_mb_per_item": self.activation_mb_per_item,
            "max_batch": self.max_batch,
            "points": [
                {
                    "slice_size": p.slice_size,
                    "batch": p.batch,
                    "p50_ms": p.p50_ms,
                    "p99_ms": p.p99_ms,
                    "throughput_rps": p.throughput_rps,
                    "samples": p.samples,
                    "processes": p.processes,
                }
                for p in self.points
            ],
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> "Profile":
        raw_points = data.get("points", [])
        assert isinstance(raw_points, list)
        features = data.get("features", {})
        assert isinstance(features, dict)
        return Profile(
            model=str(data["model"]),
            device_kind=str(data.get("device_kind", "cpu")),
            hardware=str(data.get("hardware", "")),
            memory_mb=float(data.get("memory_mb", 0.0)),  # type: ignore[arg-type]
            load_s=float(data.get("load_s", 0.0)),  # type: ignore[arg-type]
            features={str(k): float(v) for k, v in features.items()},
            activation_mb_per_item=float(data.get("activation_mb_per_item", 0.0)),  # type: ignore[arg-type]
            max_batch=int(data.get("max_batch", 0)),  # type: ignore[call-overload]
            points=tuple(
                ProfilePoint(
                    slice_size=int(p["slice_size"]),
                    batch=int(p["batch"]),
                    p50_ms=float(p["p50_ms"]),
                    p99_ms=float(p.get("p99_ms", p["p50_ms"])),
                    throughput_rps=float(p.get("throughput_rps", 0.0)),
                    samples=int(p.get("samples", 0)),
                    processes=int(p.get("processes", 1)),
                )
                for p in raw_points
            ),
        )


class LatencyTable:
    """Latency of one model as sorted tables per slice size, with the interpolation rules every
    user of profiles shares (planner, simulator, data plane):

    - in batch: linear between measured batches and non-decreasing (a bigger batch never runs
      faster); below the smallest measured batch, along the first segment but never below
      proportional scaling; above the largest, proportional to the batch (safe over-estimate);
    - in slice size: linear in 1/size between measured sizes; a smaller slice than any measured
      scales up in proportion (same work on fewer units); a larger one gets no speed-up.
    """

    def __init__(self, profile: Profile, quantile: str = "p50", processes: int = 1) -> None:
        self.model = profile.model
        self.processes = processes  # the process count whose points the table holds
        by_size: dict[int, list[tuple[int, float]]] = {}
        for p in profile.points:
            if p.processes != processes:
                continue
            by_size.setdefault(p.slice_size, []).append((p.batch, p.p99_ms if quantile == "p99" else p.p50_ms))
        self.sizes = sorted(by_size)  # measured slice sizes
        self._tables: dict[int, tuple[list[int], list[float]]] = {}  # size -> (batches, latency ms)
        for size, pts in by_size.items():
            pts.sort(key=lambda x: x[0])
            ys: list[float] = []
            for _, v in pts:
                ys.append(max(v, ys[-1]) if ys else v)
            self._tables[size] = ([x for x, _ in pts], ys)

    def on_size(self, size: int, batch: int) -> float:
        xs, ys = self._tables[size]
        if len(xs) == 1:
            return ys[0] * batch / xs[0]
        j = bisect.bisect_left(xs, batch)
        if j < len(xs) and xs[j] == batch:
            return ys[j]
        if j == 0:  # below the smallest batch: first segment, floored at proportional scaling
            x0, x1, y0, y1 = xs[0], xs[1], ys[0], ys[1]
            return max(y0 * batch / x0, y0 + (y1 - y0) * (batch - x0) / (x1 - x0))
        if j == len(xs):
            return ys[-1] * batch / xs[-1]
        x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
        return max(y0, y0 + (y1 - y0) * (batch - x0) / (x1 - x0))

    def latency_ms(self, size: float, batch: int) -> float:
        sizes = self.sizes
        if not sizes:
            raise ValueError(f"profile of {self.model} has no points with {self.processes} process(es)")
        if size in self._tables:
            return self.on_size(int(size), batch)
        i = bisect.bisect_left(sizes, size)
        if i == 0:
            return self.on_size(sizes[0], batch) * sizes[0] / size
        if i == len(sizes):
            return self.on_size(sizes[-1], batch)
        lo, hi = sizes[i - 1], sizes[i]
        l_lo, l_hi = self.on_size(lo, batch), self.on_size(hi, batch)
        t = (1 / size - 1 / hi) / (1 / lo - 1 / hi)
        return l_hi + t * (l_lo - l_hi)
