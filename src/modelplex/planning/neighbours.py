"""Interference between the slices of one device, as the builder evaluates a layout.

- Slowdowns come from the configured InterferenceModel over each slice's features at the batch
  it runs (`features_at`): first at each model's solo SLO/2-rule batch on that slice size, then,
  when any model's features depend on the batch, once more at the batches configured under the
  first slowdowns (batches shrink under interference, and with them the traffic they cause).
- Instead of rejecting a placement because a neighbour can no longer carry its rate at the new
  slowdown, `trim` recomputes each such neighbour at the largest share of its rate it still
  serves (batch and duty cycle recomputed by `configure`); the rest is spilled, for the policy
  to place elsewhere (gpu-let re-plans a model left short the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

from modelplex.core.devices import DeviceSpec
from modelplex.planning.context import ModelInfo
from modelplex.planning.interference import InterferenceModel, features_at, merged_features

Work = list[tuple[ModelInfo, float]]  # (model, rate) pairs of one slice
MIN_KEPT = 0.05  # a neighbour trimmed below this share of its rate: the placement is not worth it


def batch_dependent(layout: Sequence[tuple[int, Work]]) -> bool:
    return any("@" in key for _, work in layout for m, _ in work for key in m.features)


def slice_alphas(
    model: InterferenceModel, device: DeviceSpec, layout: Sequence[tuple[int, Work]], batches: Sequence[Sequence[int]] | None = None
) -> list[float]:
    """Slowdown of every slice of a layout; `batches[i][j]` is the batch of model j on slice i
    (None: each model's solo SLO/2-rule batch on that size)."""
    if len(layout) < 2:
        return [1.0] * len(layout)
    loads = []
    for i, (size, work) in enumerate(layout):
        feats = []
        for j, (m, _) in enumerate(work):
            sat = m.sat.get(size)
            b = batches[i][j] if batches is not None else (sat.batch if sat is not None else 1)
            feats.append(features_at(m.features, b))
        loads.append((merged_features(feats), size / device.capacity))
    return [model.alpha(loads[i], loads[:i] + loads[i + 1 :]) for i in range(len(layout))]
