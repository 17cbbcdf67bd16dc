"""Pure parts: statistics, synthetic inputs, the latency model's held-out evaluation, the
interference fit and predictor."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelplex.core.model import BatchingConfig, ModelConfig, ModelId
from modelplex.core.profile import Profile, ProfilePoint
from modelplex.core.tensors import DataType, TensorSpec
from modelplex.planning.interference import LinearInterference, interference_from_json
from modelplex.profiling.inputs import DEFAULT_DYNAMIC_DIM, INT_RANGE, synthesize
from modelplex.profiling.interference import (
    Observation,
    design_row,
    fit_coeffs,
    fit_observations,
    leave_one_pair_out,
    predict_slowdown,
    to_device_scale,
    to_slice_scale,
)
from modelplex.profiling.latency_model import is_non_decreasing_in_batch, leave_one_out
from modelplex.profiling.progress import Progress
from modelplex.profiling.stats import StopRule, median_rel_ci


def make_profile(latency: dict[tuple[int, int], float], model: str = "m") -> Profile:
    pts = tuple(ProfilePoint(s, b, ms, ms * 1.1, b / ms * 1000, 10) for (s, b), ms in latency.items())
    return Profile(model, "cpu", "test-cpu x2", pts)


def test_stop_rule_stops_on_tight_median_and_on_budget() -> None:
    rule = StopRule(min_samples=10, max_samples=1000, rel_ci=0.02, budget_s=5.0, min_s=0.0)
    assert not rule.done([1.0] * 9, 0.0)
    assert rule.done([1.0] * 30, 0.1)  # no spread at all
    noisy = list(np.random.default_rng(0).lognormal(0, 0.5, 30))
    assert median_rel_ci(noisy) > 0.02 and not rule.done(noisy, 1.0)
    assert rule.done(noisy, 5.0)  # budget spent
    assert rule.done([1.0] * 1000, 0.0)


def test_synthesized_inputs_follow_the_specs() -> None:
    config = ModelConfig(
        ModelId("t", "1"), "/dev/null", "onnxruntime_onnx",
        inputs=(TensorSpec("ids", DataType.INT64, (-1,)), TensorSpec("x", DataType.FP32, (3, 4))),
        outputs=(), batching=BatchingConfig(max_batch_size=8),
    )  # fmt: skip
    arrays = dict(synthesize(config, 5))
    assert arrays["ids"].shape == (5, DEFAULT_DYNAMIC_DIM) and arrays["ids"].dtype == np.int64
    assert arrays["ids"].min() >= 0 and arrays["ids"].max() < INT_RANGE
    assert arrays["x"].shape == (5, 3, 4) and arrays["x"].dtype == np.float32


def test_latency_model_leave_one_out_is_exact_on_linear_latency() -> None:
    prof = make_profile({(s, b): 1.0 + 0.5 * b / s for s in (1, 2) for b in (1, 2, 4, 8, 16)})
    report = leave_one_out([prof])
    assert len(report.errors) == 10
    assert report.median_rel_error(interior_only=True) < 1e-9
    assert report.summary()["interior_points"] == 6


def test_latency_model_is_non_decreasing_even_when_measurements_are_not() -> None:
    prof = make_profile({(1, 1): 2.0, (1, 2): 1.5, (1, 4): 3.0, (1, 8): 2.9, (1, 16): 9.0})
    assert is_non_decreasing_in_batch(prof)


COEFFS = (0.02, 0.05, 0.01, 0.03, 1.05)


def synthetic_observations(n: int, noise: float, seed: int = 1) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = []
    for g in range(n):
        fa = {"l2": float(rng.uniform(0, 10)), "dram": float(rng.uniform(0, 20))}
        fb = {"l2": float(rng.uniform(0, 10)), "dram": float(rng.uniform(0, 20))}
        alpha = float(np.dot(design_row(fa, fb), COEFFS)) * (1 + rng.normal(0, noise))
        out.append(Observation(g, "a", "b", 1, 1, fa, fb, 1.0, alpha))
    return out


def test_interference_fit_recovers_known_coefficients() -> None:
    exact = fit_observations(synthetic_observations(40, 0.0))
    assert np.allclose(exact, COEFFS, atol=1e-9)
    noisy = fit_observations(synthetic_observations(200, 0.01))
    assert np.allclose(noisy, COEFFS, atol=0.01)
    held = leave_one_pair_out(synthetic_observations(40, 0.0))
    assert len(held) == 40 and max(h.rel_error for h in held) < 1e-9


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=5, max_size=5))
def test_fit_recovers_any_coefficients(coeffs: list[float]) -> None:
    rng = np.random.default_rng(5)
    rows = [[*rng.uniform(0, 3, 4), 1.0] for _ in range(12)]
    alphas = [float(np.dot(r, coeffs)) for r in rows]
    assert np.allclose(fit_coeffs(rows, alphas), coeffs, atol=1e-6)


def test_predict_slowdown_never_below_one_and_matches_the_planner() -> None:
    fa, fb = {"l2": 2.0, "dram": 4.0}, {"l2": 1.0, "dram": 3.0}
    assert predict_slowdown(fa, fb, (0, 0, 0, 0, 0.5)) == 1.0
    expected = 0.02 * 2 + 0.05 * 1 + 0.01 * 4 + 0.03 * 3 + 1.05
    assert predict_slowdown(fa, fb, COEFFS) == pytest.approx(expected)
    # stored at device scale, the planner's model (which multiplies by the slice fraction) agrees
    frac = 0.5
    planner = interference_from_json({"kind": "linear", "coeffs": list(COEFFS)})
    assert isinstance(planner, LinearInterference)
    assert planner.alpha((to_device_scale(fa, frac), frac), [(to_device_scale(fb, frac), frac)]) == pytest.approx(expected)
    assert to_slice_scale(to_device_scale(fa, frac), frac) == pytest.approx(fa)


def test_fit_rejects_malformed_input() -> None:
    with pytest.raises(ValueError):
        fit_coeffs([[1.0, 2.0]], [1.0])


def test_progress_line_has_eta() -> None:
    out = io.StringIO()
    bar = Progress(4, "profile", stream=out, every_s=0.0)
    bar.advance(1, "m slice=1 batch=1")
    bar.close()
    text = out.getvalue()
    assert "ETA" in text and "25.0%" in text and "100.0%" in text
