"""Priority levels in a model's queue (Triton's priority_levels): table-driven, on a fake clock."""

from __future__ import annotations

import pytest

from modelplex.core.errors import InvalidArgumentError
from modelplex.dispatch.batching import NO_DEADLINE, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.dispatch.deadlines import priority_level
from modelplex.dispatch.latency import LatencyEstimator


def queue(max_batch: int, latency_s: float = 0.001) -> BatchQueue[str]:
    return BatchQueue(BatchPolicyConfig(max_batch_size=max_batch), LatencyEstimator(prior_s=lambda b: latency_s * b))


@pytest.mark.parametrize(
    ("max_batch", "queued", "batches"),
    [
        # (name, priority level, deadline) submitted in this order -> names per batch
        (2, [("a", 0, 5.0), ("b", 0, 1.0), ("c", 0, 3.0)], [["b", "c"], ["a"]]),  # one level: EDF
        (2, [("low", 2, 1.0), ("hi", 1, 9.0), ("hi2", 1, 8.0)], [["hi2", "hi"], ["low"]]),  # level first
        (1, [("l3", 3, 1.0), ("l2", 2, 2.0), ("l1", 1, 3.0)], [["l1"], ["l2"], ["l3"]]),
        (3, [("x", 2, NO_DEADLINE), ("y", 1, NO_DEADLINE), ("z", 2, NO_DEADLINE)], [["y", "x", "z"]]),  # FIFO ties
        (4, [("a", 2, 2.0), ("b", 1, 4.0), ("c", 2, 1.0), ("d", 1, 3.0)], [["d", "b", "c", "a"]]),
    ],
)
def test_higher_priority_batched_first_deadline_order_within_a_level(
    max_batch: int, queued: list[tuple[str, int, float]], batches: list[list[str]]
) -> None:
    q = queue(max_batch)
    for name, level, deadline in queued:
        assert q.submit(QueuedRequest(0.0, deadline, 1, name, priority=level), 0.0).admitted
    got = []
    while (batch := q.next_batch(0.0)) is not None and batch.requests:
        got.append([r.payload for r in batch.requests])
        q.completed(batch, 0.001, 0.0)
    assert got == batches and len(q) == 0


def test_a_batch_shrinks_to_the_tightest_deadline_in_it_whatever_its_level() -> None:
    q = queue(4, latency_s=0.010)  # 10 ms per row
    q.submit(QueuedRequest(0.0, 1.0, 1, "hi", priority=1), 0.0)
    q.submit(QueuedRequest(0.0, 0.025, 1, "urgent-low", priority=2), 0.0)
    q.submit(QueuedRequest(0.0, 1.0, 1, "low", priority=2), 0.0)
    batch = q.next_batch(0.0)
    assert batch is not None and [r.payload for r in batch.requests] == ["hi", "urgent-low"]  # 20 ms fits 25 ms


@pytest.mark.parametrize(
    ("level", "ahead_rows"),
    [(1, 1), (2, 3), (3, 4)],  # work ahead: its own row plus the queued rows of levels <= its own
)
def test_admission_counts_only_the_work_ahead_of_its_level(level: int, ahead_rows: int) -> None:
    q = queue(1, latency_s=0.010)
    for lvl in (2, 2, 3):
        q.submit(QueuedRequest(0.0, 5.0, 1, f"l{lvl}", priority=lvl), 0.0)
    assert q.predict_finish(1, 10.0, 0.0, level) == pytest.approx(0.010 * ahead_rows)
    # a tight deadline is met ahead of its own level's looser ones, never ahead of a higher level
    assert q.submit(QueuedRequest(0.0, 0.015, 1, "x", priority=level), 0.0).admitted is (level < 3)


@pytest.mark.parametrize(
    ("params", "levels", "default", "expect"),
    [
        ({}, 0, 0, 0), ({"priority": 5}, 0, 0, 0),  # no levels: one queue level
        ({}, 3, 2, 2), ({"priority": 0}, 3, 2, 2), ({"priority": 1}, 3, 2, 1), ({"priority": 3}, 3, 2, 3),
        ({"priority": "1"}, 3, 2, 1),  # string parameter (some gRPC clients)
    ],
)
def test_priority_level(params: dict[str, object], levels: int, default: int, expect: int) -> None:
    assert priority_level(params, levels, default) == expect


@pytest.mark.parametrize(
    ("value", "levels", "message"),
    [(4, 3, "between 1 and 3"), (-1, 3, "non-negative integer"), (1.5, 3, "non-negative integer"),
     (True, 3, "non-negative integer"), ("high", 3, "non-negative integer"), (-2, 0, "non-negative integer")],
)
def test_bad_priority_is_invalid_argument(value: object, levels: int, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        priority_level({"priority": value}, levels, 1)
