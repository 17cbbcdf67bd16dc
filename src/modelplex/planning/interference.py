"""Interference between slices of one device: a pluggable model whose coefficients are data.

The linear model of the gpu-let reference: the slowdown of model A running next to neighbours B
on one device is

    alpha = c0*L2_A + c1*sum(L2_B) + c2*DRAM_A + c3*sum(DRAM_B) + c4   (clamped to >= 1)

where L2_X and DRAM_X are X's solo-run L2-cache and DRAM utilisation (0..1, profile features
"l2" and "dram"), scaled by X's slice fraction. A slice alone on its device has alpha = 1.
Coefficients must be fitted per device type from measured pairs; the default is no interference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# (features of the slice, slice fraction of the device) as the model sees one slice
SliceLoad = tuple[Mapping[str, float], float]

# coefficients fitted on an RTX 2080 Ti by the gpu-let authors (L2_A, L2_B, DRAM_A, DRAM_B, const)
GPULET_2080TI_COEFFS: tuple[float, float, float, float, float] = (0.113, 0.716, 0.355, 0.088, 0.895)


class InterferenceModel(Protocol):
    """Predicts the slowdown factor (>= 1) of one slice given its neighbours on the device."""

    def alpha(self, own: SliceLoad, neighbours: Sequence[SliceLoad]) -> float: ...


@dataclass(frozen=True)
class NoInterference:
    """Neighbours never slow each other down (the default when no model is fitted)."""

    def alpha(self, own: SliceLoad, neighbours: Sequence[SliceLoad]) -> float:
        return 1.0


@dataclass(frozen=True)
class LinearInterference:
    """The reference's linear model over solo-run L2 and DRAM utilisation."""

    coeffs: tuple[float, float, float, float, float]  # c0..c4 as in the module docstring
    l2_key: str = "l2"  # profile feature holding L2 utilisation at full device (0..1)
    dram_key: str = "dram"  # profile feature holding DRAM utilisation at full device (0..1)

    def alpha(self, own: SliceLoad, neighbours: Sequence[SliceLoad]) -> float:
        if not neighbours:
            return 1.0
        c0, c1, c2, c3, c4 = self.coeffs
        feats, frac = own
        l2_b = sum(f.get(self.l2_key, 0.0) * fr for f, fr in neighbours)
        dram_b = sum(f.get(self.dram_key, 0.0) * fr for f, fr in neighbours)
        value = (
            c0 * feats.get(self.l2_key, 0.0) * frac
            + c1 * l2_b
            + c2 * feats.get(self.dram_key, 0.0) * frac
            + c3 * dram_b
            + c4
        )
        return max(1.0, value)


NO_INTERFERENCE = NoInterference()


def merged_features(per_model: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Features of a slice that time-shares several models: the worst of each feature."""
    out: dict[str, float] = {}
    for feats in per_model:
        for key, value in feats.items():
            out[key] = max(out.get(key, 0.0), value)
    return out


def interference_from_json(data: Mapping[str, object] | None) -> InterferenceModel:
    """{"kind": "linear", "coeffs": [c0..c4]} or {"kind": "none"} / None."""
    if not data or data.get("kind", "none") == "none":
        return NO_INTERFERENCE
    raw = data.get("coeffs")
    if data.get("kind") != "linear" or not isinstance(raw, (list, tuple)) or len(raw) != 5:
        raise ValueError("interference model must be {'kind': 'linear', 'coeffs': [5 numbers]}")
    c = tuple(float(x) for x in raw)
    return LinearInterference((c[0], c[1], c[2], c[3], c[4]))
