"""The interference model: slowdown of a slice next to a neighbour slice on one device.

As in the gpu-let reference, the slowdown alpha of model A next to model B is linear in four
solo-run features:

    alpha = c0*f1_A + c1*f1_B + c2*f2_A + c3*f2_B + c4

On a CPU host without hardware counters (perf reports LLC misses as <not supported> in a
container) the features are proxies computed from a solo run on the slice:
  f1 ("l2", cache pressure)  = weight bytes / latency of one inference, GB/s (weights are re-read
                               from cache or memory every batch);
  f2 ("dram", memory traffic) = (weights + inputs + outputs bytes) / latency, GB/s.
Both are per slice. A Profile stores them at full-device scale (divided by the slice's fraction
of the device) under the keys "l2" and "dram", so the planner's LinearInterference (which
multiplies by the slice fraction) sees the same numbers this fit saw, and the coefficients
stored as {"kind": "linear", "coeffs": [c0..c4]} plug straight into planning.interference.

Everything here is pure (numpy only); measuring pairs is profiling.pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Coeffs = tuple[float, float, float, float, float]
F1 = "l2"  # feature key of the cache-pressure proxy (same key the planner reads)
F2 = "dram"  # feature key of the memory-traffic proxy


def solo_features(weight_bytes: float, io_bytes: float, latency_s: float) -> dict[str, float]:
    """Per-slice features of one solo run of a batch (io_bytes: its inputs + outputs)."""
    if latency_s <= 0:
        return {F1: 0.0, F2: 0.0}
    return {F1: weight_bytes / latency_s / 1e9, F2: (weight_bytes + io_bytes) / latency_s / 1e9}


def to_device_scale(features: Mapping[str, float], slice_fraction: float) -> dict[str, float]:
    """Per-slice features -> the full-device scale stored in Profile.features."""
    return {k: v / slice_fraction for k, v in features.items()}


def to_slice_scale(features: Mapping[str, float], slice_fraction: float) -> dict[str, float]:
    """Profile.features (full-device scale) -> features of the model on a slice of that fraction."""
    return {F1: features.get(F1, 0.0) * slice_fraction, F2: features.get(F2, 0.0) * slice_fraction}


def design_row(features_a: Mapping[str, float], features_b: Mapping[str, float]) -> list[float]:
    return [features_a.get(F1, 0.0), features_b.get(F1, 0.0), features_a.get(F2, 0.0), features_b.get(F2, 0.0), 1.0]


def predict_slowdown(features_a: Mapping[str, float], features_b: Mapping[str, float], coeffs: Sequence[float]) -> float:
    """Predicted slowdown (>= 1) of A next to B; features are per-slice ({"l2": .., "dram": ..})."""
    value = float(np.dot(design_row(features_a, features_b), np.asarray(coeffs, dtype=np.float64)))
    return max(1.0, value)


def fit_coeffs(rows: Sequence[Sequence[float]], alphas: Sequence[float], ridge: float = 0.0) -> Coeffs:
    """Least squares (with an optional ridge penalty on c0..c3, not on the constant c4).

    Features are scaled to unit RMS before the ridge so that the penalty does not depend on
    units; ridge=0 is ordinary least squares (minimum-norm when the features are collinear).
    """
    x = np.asarray(rows, dtype=np.float64)
    y = np.asarray(alphas, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 5 or len(y) != len(x) or len(y) == 0:
        raise ValueError("fit_coeffs needs n rows of 5 features (last = 1) and n slowdowns")
    scale = np.sqrt(np.mean(x[:, :4] ** 2, axis=0))
    scale[scale == 0] = 1.0
    xs = x.copy()
    xs[:, :4] /= scale
    if ridge > 0:
        penalty = np.sqrt(ridge) * np.eye(5)[:4]
        xs = np.vstack([xs, penalty])
        y = np.concatenate([y, np.zeros(4)])
    sol, *_ = np.linalg.lstsq(xs, y, rcond=None)
    sol[:4] /= scale
    return (float(sol[0]), float(sol[1]), float(sol[2]), float(sol[3]), float(sol[4]))


@dataclass(frozen=True)
class Observation:
    """One measured slowdown: model A on its slice while model B ran on the neighbour slice."""

    group: int  # id of the concurrent run it came from (both directions of a pair share it)
    model_a: str  # the slowed model
    model_b: str  # its neighbour
    batch_a: int  # A's batch
    batch_b: int  # B's batch
    features_a: dict[str, float]  # A's per-slice solo features
    features_b: dict[str, float]  # B's per-slice solo features
    solo_ms: float  # A's median latency alone
    paired_ms: float  # A's median latency next to B

    @property
    def alpha(self) -> float:
        return self.paired_ms / self.solo_ms

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group, "model_a": self.model_a, "model_b": self.model_b,
            "batch_a": self.batch_a, "batch_b": self.batch_b,
            "features_a": self.features_a, "features_b": self.features_b,
            "solo_ms": self.solo_ms, "paired_ms": self.paired_ms, "alpha": self.alpha,
        }  # fmt: skip


@dataclass(frozen=True)
class HeldOutPair:
    """Prediction of one observation by a model fitted without its pair."""

    observation: Observation  # what was measured
    predicted_alpha: float  # predicted from the other pairs

    @property
    def rel_error(self) -> float:
        return abs(self.predicted_alpha - self.observation.alpha) / self.observation.alpha


def fit_observations(obs: Sequence[Observation], ridge: float = 0.0) -> Coeffs:
    return fit_coeffs([design_row(o.features_a, o.features_b) for o in obs], [o.alpha for o in obs], ridge)


def leave_one_pair_out(obs: Sequence[Observation], ridge: float = 0.0) -> list[HeldOutPair]:
    """Hold out each concurrent run (both its directions), fit on the rest, predict it."""
    out: list[HeldOutPair] = []
    for group in sorted({o.group for o in obs}):
        train = [o for o in obs if o.group != group]
        if len(train) < 2:
            continue
        coeffs = fit_observations(train, ridge)
        for o in obs:
            if o.group == group:
                out.append(HeldOutPair(o, predict_slowdown(o.features_a, o.features_b, coeffs)))
    return out


def error_summary(held: Sequence[HeldOutPair]) -> dict[str, float]:
    rel = [h.rel_error for h in held]
    if not rel:
        return {"pairs_held_out": 0.0}
    # the trivial baseline: predict every slowdown as the mean of the others' (no features)
    return {
        "observations": float(len(rel)),
        "mean_rel_error": float(np.mean(rel)),
        "median_rel_error": float(np.median(rel)),
        "max_rel_error": float(np.max(rel)),
    }
