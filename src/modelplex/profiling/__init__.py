"""Profiling: measure latency per (model, slice size, batch) with the real slice worker, predict it
(core.profile.Profile.latency_ms), and measure, fit and predict interference between slices.

The planner's API (pure, no processes):
  predict_latency_ms(profile, slice_size, batch)          L(model, slice, batch), non-decreasing in batch
  predict_slowdown(features_a, features_b, coeffs)         alpha >= 1 of A next to B
  to_slice_scale(profile.features, slice_fraction)         the features predict_slowdown takes
The measuring side is profiling.runner / profiling.pairs, driven by `modelplex profile`.
"""

from modelplex.profiling.interference import fit_coeffs, predict_slowdown, to_device_scale, to_slice_scale
from modelplex.profiling.latency_model import leave_one_out, predict_latency_ms

__all__ = [
    "fit_coeffs",
    "leave_one_out",
    "predict_latency_ms",
    "predict_slowdown",
    "to_device_scale",
    "to_slice_scale",
]
