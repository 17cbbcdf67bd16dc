"""The simulator: determinism, golden seeded runs, behaviour around planned capacity, traces."""

from __future__ import annotations

import numpy as np
import pytest

from modelplex.core import Demand, DeviceKind, DeviceSpec, InvalidArgumentError
from modelplex.core.plan import Plan
from modelplex.planning import plan
from modelplex.dispatch.dutycycle import DutyCycleScheduler
from modelplex.planning.validate import plan_capacity_rps
from modelplex.planning.synthetic import MODELS, gpu_profiles
from modelplex.sim import SimConfig, TraceSpec, generate, parse_trace_spec, read_csv_trace, simulate

NAMES = ["resnet50", "mobilenetv2", "vgg16"]
PROFILES = gpu_profiles(NAMES)
SLO = {n: MODELS[n].slo_ms for n in NAMES}
DEVICES = [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100) for i in range(2)]


def _plan(policy: str = "elastic", each_rps: float = 3000.0) -> Plan:
    return plan([Demand(n, each_rps, SLO[n]) for n in NAMES], PROFILES, DEVICES, policy)


def _run(p: Plan, each_rps: float | list[float], seed: int = 7, duration_s: float = 1.0, spec: TraceSpec = TraceSpec("poisson"), warmup_s: float = 0.2):
    rates = each_rps if isinstance(each_rps, list) else [each_rps] * 3
    trace = generate(spec, rates, duration_s, np.random.default_rng(seed))
    order = sorted(NAMES)  # the simulator indexes models by sorted name
    remap = np.array([order.index(n) for n in NAMES], dtype=np.int32)
    trace = (trace[0], remap[trace[1]])
    return simulate(p, PROFILES, SLO, trace, duration_s, SimConfig(seed=seed, warmup_s=warmup_s))


def test_same_seed_same_result() -> None:
    p = _plan()
    a, b = _run(p, 3000), _run(p, 3000)
    assert a.to_json() == b.to_json()
    c = _run(p, 3000, seed=8)
    assert c.to_json() != a.to_json()


def test_golden_seeded_run() -> None:
    r = _run(_plan(), 3000)
    got = (r.total.requests, r.total.ok, r.total.late, r.total.dropped, round(r.total.p50_ms, 3), round(r.total.p99_ms, 3))
    assert got == GOLDEN


GOLDEN = (7359, 7359, 0, 0, 5.794, 15.579)  # routing by the shared Router (smooth weighted round robin)


@pytest.mark.parametrize("policy", ["elastic", "temporal"])
def test_half_capacity_meets_slo_and_overload_collapses(policy: str) -> None:
    p = _plan(policy, 3000)
    cap = plan_capacity_rps(p)
    half = _run(p, [0.5 * cap[n] for n in NAMES])
    assert half.total.attainment >= 0.999
    assert all(m.p99_ms <= SLO[m.model] for m in half.models)
    # well beyond what the slices carry (short: overloaded queues make BatchQueue.submit O(queue))
    over = _run(p, [2.5 * cap[n] for n in NAMES], duration_s=0.25, warmup_s=0.1)
    assert over.total.attainment < 0.6
    assert over.total.dropped > 0


def test_time_shared_slice_runs_turns() -> None:
    # tiny rates for three models on one GPU force a shared duty cycle
    dem = [Demand(n, 30, SLO[n]) for n in NAMES]
    p = plan(dem, PROFILES, DEVICES[:1], "temporal")
    assert any(len(s.assignments) > 1 for s in p.slices)
    r = _run(p, 30, duration_s=4.0)
    assert r.total.attainment >= 0.999 and r.total.requests > 200


def test_bursty_and_step_traces() -> None:
    p = _plan()
    bursty = _run(p, 1500, spec=TraceSpec("gamma", cv=3.0))
    smooth = _run(p, 1500)
    assert bursty.total.p99_ms >= smooth.total.p99_ms * 0.9
    step = _run(p, 3000, duration_s=2.0, spec=parse_trace_spec("step:at=0/0.3;1/3.0"))
    assert step.total.attainment < 0.9  # the step to 3x overloads the plan


def test_trace_generators_hit_their_rates() -> None:
    rng = np.random.default_rng(0)
    t, i = generate(TraceSpec("poisson"), [1000.0, 10.0], 10.0, rng)
    assert np.all(np.diff(t) >= 0)
    assert abs(np.count_nonzero(i == 0) - 10_000) < 400 and abs(np.count_nonzero(i == 1) - 100) < 40
    g, _ = generate(TraceSpec("gamma", cv=2.0), [1000.0], 10.0, rng)
    gaps = np.diff(g)
    assert abs(len(g) - 10_000) < 800 and 1.6 < gaps.std() / gaps.mean() < 2.4


def test_csv_trace_and_spec_errors() -> None:
    t, i = read_csv_trace("time_s,model\n0.5,b\n0.1,a\n9,a\n", {"a": 0, "b": 1}, 5.0)
    assert t.tolist() == [0.1, 0.5] and i.tolist() == [0, 1]
    with pytest.raises(InvalidArgumentError, match="not in the plan"):
        read_csv_trace("0.1,zzz\n", {"a": 0}, 5.0)
    for bad in ("weird", "poisson:scale=x", "step", "gamma:cv=0", "poisson:foo=1"):
        with pytest.raises(InvalidArgumentError):
            parse_trace_spec(bad)


def test_duty_cycle_scheduler_is_round_robin_and_work_conserving() -> None:
    s = DutyCycleScheduler(["a", "b", "c"], 10.0)
    assert s.candidates(0.0) == [0, 1, 2]
    s.started(0, 0.0)
    assert s.candidates(0.001) == []  # busy
    s.finished(0.002)
    assert s.candidates(0.002) == [1, 2, 0]
    s.started(2, 0.002)  # b had nothing: c takes the slice
    s.finished(0.004)
    assert s.candidates(0.004) == [0, 1, 2]
    s.started(0, 0.004)
    assert s.cycle_start_s == 0.004 and s.turns == [2, 0, 1]
