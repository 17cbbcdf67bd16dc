"""Builders for planning tests: tiny hand-made profiles with round numbers."""

from __future__ import annotations

from modelplex.core import Demand, DeviceKind, DeviceSpec, Profile, ProfilePoint


def make_profile(
    model: str,
    base_ms: float = 2.0,
    per_item_ms: float = 0.5,
    sizes: tuple[int, ...] = (20, 40, 50, 60, 80, 100),
    kind: DeviceKind = DeviceKind.GPU_MPS,
    whole: int = 100,
    features: dict[str, float] | None = None,
) -> Profile:
    """L(b, s) = base + per_item * b * whole / s  (work scales with 1/slice)."""
    pts = []
    for s in sizes:
        for b in (1, 2, 4, 8, 16, 32):
            lat = base_ms + per_item_ms * b * whole / s
            pts.append(ProfilePoint(s, b, lat, lat * 1.05))
    return Profile(model, kind.value, "test", tuple(pts), features=features or {})


def gpus(n: int) -> list[DeviceSpec]:
    return [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(n)]


def make_demand(model: str, rate_rps: float, slo_ms: float) -> Demand:
    return Demand(model, rate_rps, slo_ms)
