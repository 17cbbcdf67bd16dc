"""The latency model L(model, slice, batch) and its error on held-out points.

L is Profile.latency_ms (core/profile.py): linear in batch between measured batches, made
non-decreasing in batch by a running maximum, and linear in 1/slice between measured slice
sizes. Here it is evaluated by leave-one-out: drop one measured (slice, batch) point, predict it
from the others, compare with the measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from modelplex.core.profile import Profile


def predict_latency_ms(profile: Profile, slice_size: int, batch: int, quantile: str = "p50") -> float:
    """L(model, slice, batch): the planner's latency model (measured or interpolated)."""
    return profile.latency_ms(slice_size, batch, quantile)


@dataclass(frozen=True)
class HeldOutError:
    """Prediction error of one held-out point."""

    model: str  # model name
    slice_size: int  # slice of the held-out point
    batch: int  # batch of the held-out point
    measured_ms: float  # its measured p50
    predicted_ms: float  # predicted from the other points
    interior: bool  # True when the batch lies between measured batches (interpolation, not extrapolation)

    @property
    def rel_error(self) -> float:
        return abs(self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass(frozen=True)
class LooReport:
    """Leave-one-out errors of the latency model over some profiles."""

    errors: tuple[HeldOutError, ...]  # one per held-out point

    def _rel(self, interior_only: bool) -> list[float]:
        return [e.rel_error for e in self.errors if e.interior or not interior_only]

    def median_rel_error(self, interior_only: bool = False) -> float:
        rel = self._rel(interior_only)
        return float(np.median(rel)) if rel else float("nan")

    def max_rel_error(self, interior_only: bool = False) -> float:
        rel = self._rel(interior_only)
        return max(rel) if rel else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "points": float(len(self.errors)),
            "median_rel_error": self.median_rel_error(),
            "max_rel_error": self.max_rel_error(),
            "interior_points": float(len(self._rel(True))),
            "interior_median_rel_error": self.median_rel_error(True),
            "interior_max_rel_error": self.max_rel_error(True),
        }


def leave_one_out(profiles: Sequence[Profile]) -> LooReport:
    """Hold out each point of each profile in turn (slices with a single point are skipped:
    predicting them would only test the slice-size interpolation, not the batch model)."""
    out: list[HeldOutError] = []
    for prof in profiles:
        for held in prof.points:
            rest = tuple(p for p in prof.points if p is not held)
            same_slice = sorted(p.batch for p in rest if p.slice_size == held.slice_size)
            if not same_slice:
                continue
            pred = replace(prof, points=rest).latency_ms(held.slice_size, held.batch)
            interior = same_slice[0] < held.batch < same_slice[-1]
            out.append(HeldOutError(prof.model, held.slice_size, held.batch, held.p50_ms, pred, interior))
    return LooReport(tuple(out))


def is_non_decreasing_in_batch(profile: Profile, max_batch: int = 64, quantile: str = "p50") -> bool:
    """Whether L(slice, b) <= L(slice, b+1) for every measured slice and b < max_batch."""
    for size in profile.slice_sizes():
        values = [profile.latency_ms(size, b, quantile) for b in range(1, max_batch + 1)]
        if any(b < a - 1e-12 for a, b in zip(values, values[1:])):
            return False
    return True
