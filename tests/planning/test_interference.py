"""Interference that costs only what it must: batch-dependent features, the worst neighbour
where the fit says so, neighbours trimmed instead of placements rejected, the fit's error."""

from __future__ import annotations

import pytest
from planning_builders import gpus, make_demand, make_profile

from modelplex.planning import LinearInterference, PlannerConfig, check_plan, plan
from modelplex.planning.interference import NO_INTERFERENCE, describe, features_at, interference_from_json

HOT = {"l2": 1.0, "dram": 1.0}


@pytest.mark.parametrize(
    "features, batch, expected",
    [
        ({"dram": 0.5}, 8, {"dram": 0.5}),
        ({"dram@1": 0.1, "dram@9": 0.9}, 5, {"dram": 0.5}),
        ({"dram@1": 0.1, "dram@9": 0.9}, 32, {"dram": 0.9}),  # flat beyond the measured batches
        ({"dram@4": 0.4, "dram@8": 0.8}, 1, {"dram": 0.4}),
        ({"dram": 0.3, "l2@2": 0.2, "l2@4": 0.6}, 3, {"dram": 0.3, "l2": 0.4}),
    ],
)
def test_features_at_a_batch(features: dict[str, float], batch: int, expected: dict[str, float]) -> None:
    got = features_at(features, batch)
    assert got.keys() == expected.keys() and all(got[k] == pytest.approx(v) for k, v in expected.items())


@pytest.mark.parametrize("aggregate, expected", [("sum", 1.0 + 0.5 * (0.25 + 0.25)), ("max", 1.0 + 0.5 * 0.25)])
def test_worst_neighbour_or_sum(aggregate: str, expected: float) -> None:
    model = LinearInterference((0.0, 0.5, 0.0, 0.0, 1.0), aggregate=aggregate)
    own = ({"l2": 1.0}, 0.5)
    assert model.alpha(own, [({"l2": 1.0}, 0.25), ({"l2": 1.0}, 0.25)]) == pytest.approx(expected)


def test_worst_neighbour_packs_tighter_than_the_sum() -> None:
    profs = [make_profile(n, features=HOT) for n in "abcd"]
    dem = [make_demand(n, 150, 40) for n in "abcd"]
    base = dict(rate_quantile=0.0, max_slices_per_device=4)
    summed = plan(dem, profs, gpus(4), "elastic", PlannerConfig(**base, interference=LinearInterference((0.1, 0.4, 0.1, 0.4, 1.0))))  # type: ignore[arg-type]
    worst = plan(dem, profs, gpus(4), "elastic", PlannerConfig(**base, interference=LinearInterference((0.1, 0.4, 0.1, 0.4, 1.0), aggregate="max")))  # type: ignore[arg-type]
    assert len(worst.devices) <= len(summed.devices)
    slow = lambda p: max(a.latency_ms / a.batch for s in p.slices for a in s.assignments)  # noqa: E731
    assert slow(worst) <= slow(summed)


def test_batch_dependent_features_lower_the_slowdown_of_small_batches() -> None:
    flat = [make_profile(n, features={"l2": 1.0, "dram": 1.0}) for n in "ab"]
    by_batch = [make_profile(n, features={"l2@1": 0.1, "l2@32": 1.0, "dram@1": 0.1, "dram@32": 1.0}) for n in "ab"]
    dem = [make_demand(n, 200, 30) for n in "ab"]
    cfg = PlannerConfig(rate_quantile=0.0, interference=LinearInterference((0.2, 1.0, 0.2, 1.0, 1.0)))
    p_flat = plan(dem, flat, gpus(4), "elastic", cfg)
    p_batch = plan(dem, by_batch, gpus(4), "elastic", cfg)
    assert len(p_batch.devices) <= len(p_flat.devices)
    assert check_plan(p_batch, dem, by_batch, cfg) == []


def test_a_neighbour_is_trimmed_not_the_placement_rejected() -> None:
    profs = [make_profile("a", features=HOT), make_profile("b", features=HOT)]
    dem = [make_demand("a", 2000, 40), make_demand("b", 2000, 40)]
    strong = LinearInterference((0.2, 0.6, 0.2, 0.6, 1.0))
    trim = plan(dem, profs, gpus(6), "elastic", PlannerConfig(rate_quantile=0.0, interference=strong))
    keep = plan(dem, profs, gpus(6), "elastic", PlannerConfig(rate_quantile=0.0, interference=strong, trim_neighbours=False))
    for p in (trim, keep):
        assert not p.unserved and check_plan(p, dem, profs, PlannerConfig(rate_quantile=0.0, interference=strong)) == []
    assert len(trim.devices) <= len(keep.devices)


@pytest.mark.parametrize(
    "data, line",
    [
        (None, "interference: none"),
        ({"kind": "linear", "coeffs": [0, 1, 0, 0, 1]}, "sum of neighbours; error not stated"),
        ({"kind": "linear", "coeffs": [0, 1, 0, 0, 1], "aggregate": "max", "error_pct": 4.5}, "worst neighbour; fitted error 4.5 %"),
        (
            {"kind": "linear", "coeffs": [0, 1, 0, 0, 1], "held_out": {"mean_rel_error": 0.073, "max_rel_error": 0.2, "observations": 12}},
            "fitted error 7.3 % mean held-out, 20.0 % worst, 12 observations",
        ),
    ],
)
def test_the_fit_error_is_reported(data: dict[str, object] | None, line: str) -> None:
    assert line in describe(interference_from_json(data))


def test_bad_aggregate() -> None:
    with pytest.raises(ValueError, match="aggregate"):
        interference_from_json({"kind": "linear", "coeffs": [0, 1, 0, 0, 1], "aggregate": "mean"})
    assert interference_from_json({"kind": "none"}) is NO_INTERFERENCE


def test_validator_recomputes_slowdowns_from_the_plan() -> None:
    profs = [make_profile("a", features=HOT), make_profile("b", features=HOT)]
    dem = [make_demand("a", 300, 100), make_demand("b", 300, 100)]
    blind = plan(dem, profs, gpus(2), "elastic", PlannerConfig(rate_quantile=0.0))
    assert len(blind.slices) >= 2 and len(blind.devices) == 1
    strong = PlannerConfig(rate_quantile=0.0, interference=LinearInterference((0.2, 0.6, 0.2, 0.6, 1.0)))
    problems = check_plan(blind, dem, profs, strong)
    assert any("below profile x slowdown" in line for line in problems), problems
    aware = plan(dem, profs, gpus(2), "elastic", strong)
    assert check_plan(aware, dem, profs, strong) == []
