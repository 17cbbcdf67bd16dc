"""Interference between slices of one device: a pluggable model whose coefficients are data.

The linear model of the gpu-let reference: the slowdown of model A running next to neighbours B
on one device is

    alpha = c0*L2_A + c1*agg(L2_B) + c2*DRAM_A + c3*agg(DRAM_B) + c4   (clamped to >= 1)

where L2_X and DRAM_X are X's solo-run L2-cache and DRAM utilisation (0..1, profile features
"l2" and "dram"), scaled by X's slice fraction, and agg is the sum over the neighbours or, where
the fitted model says so (`aggregate="max"`, gpu-let's pairwise fit), the worst neighbour. A slice
alone on its device has alpha = 1. Features may depend on the batch: a profile may hold
"dram@8", "dram@32", ... (the feature at batch 8, 32); `features_at` interpolates them at the
slice's batch, else the plain "dram" is used. Coefficients must be fitted per device type from
measured pairs (profiling.fit stores them with their held-out error); the default is none.
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
    aggregate: str = "sum"  # neighbours' features: "sum" of all, or "max" (the worst neighbour)
    error_pct: float | None = None  # the fit's mean held-out error (%), reported with plans
    max_error_pct: float | None = None  # the fit's largest held-out error (%)
    observations: int = 0  # measured pairs behind the fit

    def alpha(self, own: SliceLoad, neighbours: Sequence[SliceLoad]) -> float:
        if not neighbours:
            return 1.0
        c0, c1, c2, c3, c4 = self.coeffs
        feats, frac = own
        agg = max if self.aggregate == "max" else sum
        l2_b = agg(f.get(self.l2_key, 0.0) * fr for f, fr in neighbours)
        dram_b = agg(f.get(self.dram_key, 0.0) * fr for f, fr in neighbours)
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


def features_at(features: Mapping[str, float], batch: int) -> dict[str, float]:
    """Features at one batch: "key@b" entries interpolated linearly in b (held flat beyond the
    measured batches); a key without per-batch entries keeps its plain value."""
    per: dict[str, list[tuple[int, float]]] = {}
    out: dict[str, float] = {}
    for key, value in features.items():
        name, _, at = key.partition("@")
        if at.isdigit():
            per.setdefault(name, []).append((int(at), value))
        else:
            out.setdefault(key, value)
    for name, pts in per.items():
        pts.sort()
        lo = max((p for p in pts if p[0] <= batch), default=pts[0])
        hi = min((p for p in pts if p[0] >= batch), default=pts[-1])
        t = 0.0 if hi[0] == lo[0] else (batch - lo[0]) / (hi[0] - lo[0])
        out[name] = lo[1] + t * (hi[1] - lo[1])
    return out


def interference_from_json(data: Mapping[str, object] | None) -> InterferenceModel:
    """{"kind": "linear", "coeffs": [c0..c4], "aggregate": "sum"|"max", "error_pct": e} or
    {"kind": "none"} / None; a record of profiling.fit (with "held_out") gives its error."""
    if not data or data.get("kind", "none") == "none":
        return NO_INTERFERENCE
    raw = data.get("coeffs")
    if data.get("kind") != "linear" or not isinstance(raw, (list, tuple)) or len(raw) != 5:
        raise ValueError("interference model must be {'kind': 'linear', 'coeffs': [5 numbers]}")
    aggregate = str(data.get("aggregate", "sum"))
    if aggregate not in ("sum", "max"):
        raise ValueError(f"interference aggregate must be 'sum' or 'max', got {aggregate!r}")
    c = tuple(float(x) for x in raw)
    held = data.get("held_out")
    err, worst, n = data.get("error_pct"), data.get("max_error_pct"), data.get("observations", 0)
    if isinstance(held, Mapping) and "mean_rel_error" in held:
        err, worst, n = 100 * float(held["mean_rel_error"]), 100 * float(held.get("max_rel_error", 0.0)), held.get("observations", 0)
    return LinearInterference(
        (c[0], c[1], c[2], c[3], c[4]), aggregate=aggregate,
        error_pct=None if err is None else float(err),  # type: ignore[arg-type]
        max_error_pct=None if worst is None else float(worst),  # type: ignore[arg-type]
        observations=int(n) if isinstance(n, (int, float)) else 0,
    )


def describe(model: InterferenceModel) -> str:
    """One line for plan reports: the model and its fitted error."""
    if not isinstance(model, LinearInterference):
        return "interference: none (no fitted model; neighbours assumed not to slow each other)"
    err = "error not stated" if model.error_pct is None else f"fitted error {model.error_pct:.1f} % mean held-out"
    if model.max_error_pct is not None:
        err += f", {model.max_error_pct:.1f} % worst"
    if model.observations:
        err += f", {model.observations} observations"
    agg = "worst neighbour" if model.aggregate == "max" else "sum of neighbours"
    return f"interference: linear, {agg}; {err}"
