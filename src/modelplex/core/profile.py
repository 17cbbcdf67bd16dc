"""Measured latency of a model per (slice size, batch) and the features interference needs."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProfilePoint:
    """One measured (slice size, batch) point of one model on one kind of device."""

    slice_size: int  # cores (CPU) or % / sevenths (GPU)
    batch: int  # batch size run
    p50_ms: float  # median latency of one batch
    p99_ms: float  # 99th percentile latency of one batch
    throughput_rps: float = 0.0  # inferences per second at this point (batch / mean latency)
    samples: int = 0  # number of timed runs behind the statistics


@dataclass(frozen=True)
class Profile:
    """All measured points of one model (variant) on one hardware signature."""

    model: str  # model (or variant) name
    device_kind: str  # DeviceKind value the points were measured on
    hardware: str = ""  # hardware signature, e.g. "Intel Xeon x2" or "NVIDIA H100"
    points: tuple[ProfilePoint, ...] = ()  # measured points, any order
    memory_mb: float = 0.0  # resident memory of a worker holding this model
    load_s: float = 0.0  # time to start a worker and load the model
    # solo-run interference features at full device (0..1 utilisation-like), scaled by slice
    features: dict[str, float] = field(default_factory=dict)

    def slice_sizes(self) -> list[int]:
        return sorted({p.slice_size for p in self.points})

    def batches(self, slice_size: int) -> list[int]:
        return sorted({p.batch for p in self.points if p.slice_size == slice_size})

    def latency_ms(self, slice_size: int, batch: int, quantile: str = "p50") -> float:
        """Latency of one batch: measured, or interpolated (linear in batch, non-decreasing).

        Beyond the largest measured batch it extrapolates along the last segment; a slice size
        without measurements is interpolated in 1/size between its neighbours.
        """
        sizes = self.slice_sizes()
        if not sizes:
            raise ValueError(f"profile of {self.model} has no points")
        if slice_size in sizes:
            return self._latency_on(slice_size, batch, quantile)
        i = bisect.bisect_left(sizes, slice_size)
        if i == 0:
            lo = hi = sizes[0]
        elif i == len(sizes):
            lo = hi = sizes[-1]
        else:
            lo, hi = sizes[i - 1], sizes[i]
        l_lo = self._latency_on(lo, batch, quantile)
        l_hi = self._latency_on(hi, batch, quantile)
        if lo == hi:
            # outside the measured range: scale by work per unit of slice (never below l_lo*lo/size)
            return l_lo * lo / slice_size if slice_size > lo else l_lo
        t = (1 / slice_size - 1 / hi) / (1 / lo - 1 / hi)
        return l_hi + t * (l_lo - l_hi)

    def _latency_on(self, slice_size: int, batch: int, quantile: str) -> float:
        pts = sorted((p for p in self.points if p.slice_size == slice_size), key=lambda p: p.batch)
        xs = [p.batch for p in pts]
        ys: list[float] = []
        for p in pts:  # enforce monotonicity: a bigger batch never runs faster
            v = p.p99_ms if quantile == "p99" else p.p50_ms
            ys.append(max(v, ys[-1]) if ys else v)
        if len(xs) == 1:
            return ys[0] * batch / xs[0] if batch > xs[0] else ys[0]
        j = bisect.bisect_left(xs, batch)
        if j < len(xs) and xs[j] == batch:
            return ys[j]
        if j == 0:
            return ys[0]
        if j == len(xs):
            j = len(xs) - 1
        x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
        return max(y0, y0 + (y1 - y0) * (batch - x0) / (x1 - x0))

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "device_kind": self.device_kind,
            "hardware": self.hardware,
            "memory_mb": self.memory_mb,
            "load_s": self.load_s,
            "features": dict(self.features),
            "points": [
                {
                    "slice_size": p.slice_size,
                    "batch": p.batch,
                    "p50_ms": p.p50_ms,
                    "p99_ms": p.p99_ms,
                    "throughput_rps": p.throughput_rps,
                    "samples": p.samples,
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
            points=tuple(
                ProfilePoint(
                    slice_size=int(p["slice_size"]),
                    batch=int(p["batch"]),
                    p50_ms=float(p["p50_ms"]),
                    p99_ms=float(p.get("p99_ms", p["p50_ms"])),
                    throughput_rps=float(p.get("throughput_rps", 0.0)),
                    samples=int(p.get("samples", 0)),
                )
                for p in raw_points
            ),
        )
