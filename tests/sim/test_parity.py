"""Parity: one seeded trace through the simulator and through the live runtime (DataPlane,
SliceSet, SliceRunner) with the fake executor on a virtual clock gives identical per-request
outcomes -- the slice and batch that served each request, admitted or rejected, and completion
time -- across several models, a duty cycle, a slice of two worker processes, deadline rejections and a plan
change midway (one slice kept, others started and drained)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import DeadlineError, ModelplexError
from modelplex.core.model import BatchingConfig
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.core.tensors import DataType
from modelplex.planning.service import ServiceModel
from modelplex.planning.synthetic import cpu_profile
from modelplex.runtime.clock import VirtualClock
from modelplex.runtime.fake import FakeExecutor
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.slice_set import SliceSet
from modelplex.serving.types import InferInput, InferRequest
from modelplex.sim.arrivals import TraceSpec, generate
from modelplex.sim.engine import PlanChange, SimConfig, Simulator
from modelplex.sim.metrics import EXPIRED, LATE, OK, REJECTED

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # also when run as a script
from models import add_config_yaml, identity_fp32  # noqa: E402

MODELS = ["googlenet", "lenet", "mobilenetv2"]  # sorted: the simulator indexes models by name order
SLO_MS = {"lenet": 10.0, "mobilenetv2": 150.0, "googlenet": 300.0}
RATES = {"lenet": 150.0, "mobilenetv2": 90.0, "googlenet": 60.0}
PROFILES = [dataclasses.replace(cpu_profile(m, 2), load_s=0.08) for m in MODELS]
CPU = DeviceSpec("cpu0", DeviceKind.CPU, 4)
CHANGE_S = 1.5
START_S = 0.5  # first arrival (after the initial plan's workers started)


def _slice(sid: str, cpus: tuple[int, ...], duty_ms: float, *assign: tuple[str, int, float], processes: int = 1) -> SlicePlan:
    spec = SliceSpec("cpu0", len(cpus), cpus)
    work = tuple(ModelAssignment(m, b, 0.0, share, 0.0) for m, b, share in assign)
    return SlicePlan(sid, spec, work, duty_ms, 0.0, processes=processes)


PLAN_1 = Plan("test", (CPU,), (
    _slice("cpu0/s0", (0,), 20.0, ("lenet", 8, 1.0), ("mobilenetv2", 4, 0.7)),
    _slice("cpu0/s1", (1,), 0.0, ("mobilenetv2", 4, 0.3)),
    _slice("cpu0/s2", (2, 3), 0.0, ("googlenet", 4, 1.0)),
))
PLAN_2 = Plan("test", (CPU,), (
    _slice("cpu0/s0", (0, 1), 20.0, ("mobilenetv2", 8, 1.0), ("lenet", 8, 1.0), processes=2),  # two batches at once
    _slice("cpu0/s1", (2, 3), 0.0, ("googlenet", 4, 1.0)),  # identical to PLAN_1's s2: kept
))
Outcome = tuple[int, tuple[int, ...], int, float]  # (status, cpus, batch rows, completion time)


def _trace() -> tuple[np.ndarray, np.ndarray]:
    times, idx = generate(TraceSpec("poisson"), [RATES[m] for m in MODELS], 3.0, np.random.default_rng(11))
    keep = times >= START_S
    return times[keep], idx[keep]


def _simulated(trace: tuple[np.ndarray, np.ndarray]) -> list[Outcome]:
    batching = {m: BatchingConfig(max_batch_size=8, slo_ms=SLO_MS[m]) for m in MODELS}
    sim = Simulator(PLAN_1, PROFILES, SLO_MS, SimConfig(spread=False), batching)
    assert sim.models == MODELS
    raw = sim.run_raw(trace, [PlanChange(CHANGE_S, PLAN_2)])
    out = raw.outcomes
    result: list[Outcome] = []
    for i in range(len(trace[0])):
        status = int(out.status[i])
        if status in (OK, LATE):
            cpus = raw.slices[int(out.slice[i])][2]
            result.append((OK, cpus, int(out.batch[i]), float(trace[0][i] + out.latency[i])))
        else:
            result.append((status, (), 0, 0.0))
    return result


async def _serve(repo: Path, clock: VirtualClock, trace: tuple[np.ndarray, np.ndarray]) -> tuple[list[object], FakeExecutor]:
    service = ServiceModel(PROFILES, spread=False)
    executor = FakeExecutor(
        clock, lambda spec, model, rows: service.latency_s(spec, model, "cpu", rows),
        lambda spec, models: service.start_s(models, "cpu"),
    )
    plane = DataPlane(repo, SliceSet(executor, clock, [0, 1, 2, 3], service=service))
    await plane.load_books()
    await plane.apply_plan(PLAN_1)
    assert clock.now() < START_S

    async def change() -> None:
        await clock.sleep_until(CHANGE_S)
        await plane.apply_plan(PLAN_2)

    changing = asyncio.ensure_future(change())
    tasks = []
    for i, (t, m) in enumerate(zip(trace[0].tolist(), trace[1].tolist())):
        await clock.sleep_until(t)
        x = np.full((1, 1), float(i), np.float32)
        tasks.append(asyncio.ensure_future(plane.infer(InferRequest(MODELS[m], None, [InferInput("x", DataType.FP32, (1, 1), x)]))))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await changing
    await plane.stop()
    return list(results), executor


def _served(results: list[object], executor: FakeExecutor) -> list[Outcome]:
    ran: dict[int, tuple[tuple[int, ...], int, float]] = {}
    for b in executor.log:
        ids = b.inputs[0][1][:, 0].astype(int).tolist()
        for i in ids:
            ran[i] = (b.spec.cpus, len(ids), b.finished_s)
    out: list[Outcome] = []
    for i, r in enumerate(results):
        # expired in its queue: found unreachable at dispatch, or its deadline timer came first
        if isinstance(r, DeadlineError) and ("before running" in r.message or "deadline passed" in r.message):
            out.append((EXPIRED, (), 0, 0.0))
        elif isinstance(r, ModelplexError):
            out.append((REJECTED, (), 0, 0.0))
        elif isinstance(r, BaseException):
            raise r
        else:
            out.append((OK, *ran[i]))
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity")
    for m in MODELS:
        identity_fp32(root / m / "1" / "model.onnx", "x", "y", 1)
        add_config_yaml(root / m, f"slo_ms: {SLO_MS[m]}\nmax_batch_size: 8\n")
    return root


def test_simulator_and_live_runtime_agree_request_by_request(repo: Path) -> None:
    trace = _trace()
    simulated = _simulated(trace)
    clock = VirtualClock()
    results, executor = clock.run(_serve(repo, clock, trace))
    live = _served(results, executor)
    codes = [s for s, *_ in simulated]
    # the trace exercises what parity is about: rejections at admission, expiries, both plans
    assert codes.count(REJECTED) > 0 and codes.count(EXPIRED) > 0 and codes.count(OK) > 100
    assert {cpus for s, cpus, *_ in simulated if s == OK} >= {(0,), (1,), (0, 1), (2, 3)}
    mismatches = [(i, s, l) for i, (s, l) in enumerate(zip(simulated, live)) if s[:3] != l[:3] or abs(s[3] - l[3]) > 1e-9]
    assert not mismatches, f"{len(mismatches)} of {len(simulated)} differ, first: {mismatches[:3]}"


if __name__ == "__main__":  # the counts benchmarks/README.md quotes
    got = [s for s, *_ in _simulated(_trace())]
    print(f"{len(got)} requests: {got.count(OK)} served, {got.count(REJECTED)} refused at admission, {got.count(EXPIRED)} expired")
