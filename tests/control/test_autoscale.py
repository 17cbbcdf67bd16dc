"""Autoscaling decisions on a fake clock: hysteresis, the kind of change, the accuracy floor."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

import modelplex.control.autoscale as autoscale_module
from modelplex.control.autoscale import (
    Action,
    AutoscaleConfig,
    AutoscaleState,
    Decision,
    Deployment,
    Observation,
    Option,
    replica_capacity,
    step,
)
from modelplex.core.profile import Profile, ProfilePoint


def make_profile(name: str, b1_ms: float, per_item_ms: float) -> Profile:
    """1 core: b1_ms + per_item_ms*(b-1); 2 cores: 0.55x that (a little better than linear split)."""
    points = [
        ProfilePoint(size, b, (b1_ms + per_item_ms * (b - 1)) * f, 0.0)
        for size, f in ((1, 1.0), (2, 0.55)) for b in (1, 4, 16)
    ]
    return Profile(model=name, device_kind="cpu", points=tuple(points))


# digits-like task: an accurate slow FP32 model and a faster, slightly less accurate INT8 one.
FP32 = Option("big:fp32", 0.98, make_profile("big:fp32", 4.0, 3.0), (1,), max_batch=1)
INT8 = Option("big:int8", 0.97, make_profile("big:int8", 2.0, 1.5), (1,), max_batch=1)
SLO_MS = 20.0
CFG = AutoscaleConfig(up_window_s=2.0, down_window_s=10.0, cooldown_s=3.0, target_util=0.6)


def run(timeline: Sequence[tuple[float, float]], dep: Deployment, options: Sequence[Option],
        min_accuracy: float | None = None, config: AutoscaleConfig = CFG) -> list[Decision]:
    """Feed (now, rate_rps) observations; apply each decision's target as the next deployment."""
    state = AutoscaleState()
    out: list[Decision] = []
    for now, rate in timeline:
        state, decisions = step(state, now, "digits", [Observation(dep, rate, SLO_MS, min_accuracy)], options, config)
        for d in decisions:
            out.append(d)
            dep = d.target
    return out


def test_replica_capacity_respects_the_slo() -> None:
    # batch 1: 4 ms -> 250 rps; batch 2 (interpolated 7 ms, 2x7 <= 20): 285.7 rps, the best;
    # batch 4: 13 ms (2x13 > 20) is not allowed.
    assert replica_capacity(FP32.profile, 1, 16, SLO_MS) == (2, pytest.approx(2000 / 7))
    assert replica_capacity(FP32.profile, 1, 1, SLO_MS) == (1, pytest.approx(250.0))
    batch, rate = replica_capacity(FP32.profile, 1, 16, 100.0)
    assert batch == 16 and rate == pytest.approx(16 * 1000 / 49.0)
    assert replica_capacity(FP32.profile, 1, 1, 3.0) == (1, 0.0)  # 4 ms never meets 3 ms


ONE_FP32 = Deployment("big:fp32", 1, 1, 1)  # 250 rps

CASES = [
    # (name, timeline [(now, rate)], deployment, options, floor, expected [(action, variant, replicas, at_s)])
    ("steady load: nothing", [(t, 150.0) for t in range(0, 30)], ONE_FP32, [FP32], None, []),
    ("a short spike under the window: nothing", [(0, 150), (1, 240), (2.5, 150), (3, 150)], ONE_FP32, [FP32], None, []),
    ("sustained high load, one variant: replicate", [(0, 240), (1, 240), (2, 240)], ONE_FP32, [FP32], None,
     [(Action.REPLICATE, "big:fp32", 2, 2)]),
    ("3x step: faster variant within the floor: upgrade", [(0, 600), (1, 600), (2, 600)], ONE_FP32, [FP32, INT8], 0.95,
     [(Action.UPGRADE, "big:int8", 2, 2)]),  # 500 rps each at 60 %: 2 carry 600
    ("3x step, strict floor: replicate fp32, never int8", [(0, 600), (1, 600), (2, 600)], ONE_FP32, [FP32, INT8], 0.98,
     [(Action.REPLICATE, "big:fp32", 4, 2)]),
    ("low load must last the down window", [(t, 10.0) for t in range(0, 9)], Deployment("big:fp32", 1, 1, 4), [FP32],
     None, []),
    ("sustained low load: consolidate", [(t, 10.0) for t in range(0, 11)], Deployment("big:fp32", 1, 1, 4), [FP32],
     None, [(Action.CONSOLIDATE, "big:fp32", 1, 10)]),
    ("low load on int8 replicas with a loose floor: stays int8 (cheapest)", [(t, 100.0) for t in range(0, 11)],
     Deployment("big:int8", 1, 1, 3), [FP32, INT8], 0.9, [(Action.CONSOLIDATE, "big:int8", 1, 10)]),
    ("cooldown: two steps up are 3 s apart, not 1", [(t, 400.0) for t in range(0, 8)], ONE_FP32, [FP32], None,
     [(Action.REPLICATE, "big:fp32", 3, 2)]),
]


@pytest.mark.parametrize("name,timeline,dep,options,floor,expected", CASES, ids=[c[0] for c in CASES])
def test_decisions(name: str, timeline: list[tuple[float, float]], dep: Deployment, options: list[Option],
                   floor: float | None, expected: list[tuple[Action, str, int, float]]) -> None:
    decisions = run(timeline, dep, options, floor)
    got = [(d.action, d.target.variant, d.target.replicas, d.at_s) for d in decisions]
    assert got == expected, name
    for d in decisions:
        assert d.reason and "\n" not in d.reason and d.action.value in d.reason
        if floor is not None:
            chosen = next(o for o in options if o.variant == d.target.variant)
            assert chosen.accuracy is not None and chosen.accuracy >= floor


def test_load_rises_in_stages_and_settles_then_falls_back() -> None:
    timeline = [(float(t), 200.0) for t in range(0, 5)] + [(float(t), 600.0) for t in range(5, 20)] \
        + [(float(t), 50.0) for t in range(20, 45)]
    decisions = run(timeline, ONE_FP32, [FP32, INT8], 0.95)
    ups = [d for d in decisions if d.action in (Action.REPLICATE, Action.UPGRADE)]
    downs = [d for d in decisions if d.action in (Action.DOWNGRADE, Action.CONSOLIDATE)]
    assert ups and ups[0].at_s == 7.0  # the step at 5 s, sustained 2 s
    assert ups[-1].target_utilisation <= CFG.high_util  # settled: the last target carries the load
    assert downs and downs[0].at_s >= 30.0  # the fall at 20 s, sustained 10 s
    final = decisions[-1].target
    assert final.replicas == 1
    assert all(d.target.variant in ("big:fp32", "big:int8") for d in decisions)


def test_unservable_demand_holds_when_no_variant_meets_the_floor() -> None:
    assert run([(0, 600), (1, 600), (2, 600), (5, 600)], ONE_FP32, [FP32, INT8], 0.99) == []


def test_overload_beyond_max_replicas_is_best_effort() -> None:
    cfg = AutoscaleConfig(up_window_s=0.0, max_replicas=2)
    [d] = run([(0, 5000.0)], ONE_FP32, [FP32, INT8], None, cfg)
    assert d.target.replicas == 2 and d.target.variant == "big:int8" and d.target_utilisation > 1


def test_autoscale_is_pure() -> None:
    forbidden = {"asyncio", "onnxruntime", "socket", "time", "random", "threading", "subprocess"}
    tree = ast.parse(Path(autoscale_module.__file__).read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for n in names:
            assert n.split(".")[0] not in forbidden, n
