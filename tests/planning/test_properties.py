"""Property tests: every plan meets every SLO under its own latency model and never
oversubscribes a device, whatever the demand."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from planning_builders import gpus, make_demand, make_profile

from modelplex.core import DeviceKind, DeviceSpec
from modelplex.planning import LinearInterference, PlannerConfig, check_plan, plan

NAMES = ["m0", "m1", "m2", "m3", "m4"]

demand_sets = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=4000.0, allow_nan=False),  # rate
        st.floats(min_value=12.0, max_value=300.0, allow_nan=False),  # slo
        st.floats(min_value=0.5, max_value=4.0),  # base latency
        st.floats(min_value=0.05, max_value=1.0),  # per-item latency
    ),
    min_size=1,
    max_size=5,
)


def _instance(rows: list[tuple[float, float, float, float]]) -> tuple[list, list]:
    dem, profs = [], []
    for name, (rate, slo, base, per) in zip(NAMES, rows):
        # keep SLOs feasible: at least 2 x batch-1 latency on a whole device, with safety
        slo = max(slo, 2.3 * (base + per))
        dem.append(make_demand(name, rate, slo))
        profs.append(make_profile(name, base, per, features={"l2": per, "dram": base / 4}))
    return dem, profs


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rows=demand_sets, policy=st.sampled_from(["elastic", "temporal", "exclusive"]), quantile=st.sampled_from([0.0, 0.99]))
def test_every_plan_meets_its_own_latency_model(rows: list, policy: str, quantile: float) -> None:
    dem, profs = _instance(rows)
    cfg = PlannerConfig(rate_quantile=quantile)
    p = plan(dem, profs, gpus(6), policy, cfg)
    assert check_plan(p, dem, profs, cfg) == []


@settings(max_examples=15, deadline=None)
@given(rows=demand_sets)
def test_elastic_with_interference_and_optimal(rows: list) -> None:
    dem, profs = _instance(rows)
    cfg = PlannerConfig(interference=LinearInterference((0.113, 0.716, 0.355, 0.088, 0.895)))
    p = plan(dem, profs, gpus(6), "elastic", cfg)
    assert check_plan(p, dem, profs, cfg) == []
    o = plan(dem, profs, gpus(3), "optimal", PlannerConfig(time_limit_s=5))
    assert check_plan(o, dem, profs) == []


@settings(max_examples=20, deadline=None)
@given(rows=demand_sets, cores=st.integers(min_value=2, max_value=8))
def test_cpu_plans_never_oversubscribe_cores(rows: list, cores: int) -> None:
    dem = []
    profs = []
    for name, (rate, slo, base, per) in zip(NAMES, rows):
        dem.append(make_demand(name, rate / 20, max(slo, 2.3 * (base + per * 4))))
        profs.append(make_profile(name, base, per, sizes=tuple(range(1, cores + 1)), kind=DeviceKind.CPU, whole=cores))
    devices = [DeviceSpec(f"cpu{i}", DeviceKind.CPU, cores) for i in range(2)]
    p = plan(dem, profs, devices, "elastic")
    assert check_plan(p, dem, profs) == []
    for d in p.devices:
        cpus = [c for s in p.slices if s.slice.device_id == d.device_id for c in s.slice.cpus]
        assert len(cpus) == len(set(cpus)) and all(0 <= c < cores for c in cpus)
