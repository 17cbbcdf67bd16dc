"""Table-driven tests of the deadline-aware batching policy on a fake clock (`now` passed in)."""

from __future__ import annotations

import math

import pytest

from modelplex.dispatch.batching import NO_DEADLINE, BatchPolicyConfig, BatchQueue, QueuedRequest
from modelplex.dispatch.latency import LatencyEstimator


def make_queue(max_batch: int = 4, delay_s: float = 0.0, latency_s: float | None = None, **kw: object) -> BatchQueue[int]:
    est = LatencyEstimator(prior_s=(lambda b: latency_s * b) if latency_s is not None else None)
    return BatchQueue(BatchPolicyConfig(max_batch_size=max_batch, max_queue_delay_s=delay_s, **kw), est)  # type: ignore[arg-type]


def req(i: int, now: float, deadline: float = NO_DEADLINE, rows: int = 1) -> QueuedRequest[int]:
    return QueuedRequest(arrival_s=now, deadline_s=deadline, rows=rows, payload=i)


def test_batches_up_to_max_in_deadline_order() -> None:
    q = make_queue(max_batch=3)
    for i, d in enumerate([5.0, 1.0, 3.0, 2.0, 4.0]):
        assert q.submit(req(i, 0.0, d), 0.0).admitted
    batch = q.next_batch(0.0)
    assert batch is not None
    assert [r.payload for r in batch.requests] == [1, 3, 2]  # deadlines 1, 2, 3
    batch2 = q.next_batch(0.0)
    assert batch2 is not None and [r.payload for r in batch2.requests] == [4, 0]


@pytest.mark.parametrize(
    ("delay_s", "now", "queued", "expect_batch"),
    [
        (0.0, 0.0, 1, True),  # no delay: dispatch whatever is there
        (0.010, 0.0, 1, False),  # waits for more rows
        (0.010, 0.011, 1, True),  # oldest waited past the delay
        (0.010, 0.0, 4, True),  # full batch: no waiting
    ],
)
def test_max_queue_delay(delay_s: float, now: float, queued: int, expect_batch: bool) -> None:
    q = make_queue(max_batch=4, delay_s=delay_s)
    for i in range(queued):
        q.submit(req(i, 0.0), 0.0)
    batch = q.next_batch(now)
    assert (batch is not None and bool(batch.requests)) is expect_batch
    if not expect_batch:
        assert q.wake_at(now) == pytest.approx(delay_s)


def test_preferred_batch_size_dispatches_early() -> None:
    q = make_queue(max_batch=8, delay_s=1.0, preferred_batch_sizes=(2,))
    q.submit(req(0, 0.0), 0.0)
    assert q.next_batch(0.0) is None
    q.submit(req(1, 0.0), 0.0)
    batch = q.next_batch(0.0)
    assert batch is not None and batch.rows == 2


def test_rejects_at_submit_when_deadline_unreachable() -> None:
    q = make_queue(max_batch=1, latency_s=0.010)
    assert q.submit(req(0, 0.0, deadline=0.015), 0.0).admitted
    # the second must wait for the first: finishes at 0.020 > 0.015
    adm = q.submit(req(1, 0.0, deadline=0.015), 0.0)
    assert not adm.admitted and "deadline cannot be met" in adm.reason
    assert q.submit(req(2, 0.0, deadline=0.025), 0.0).admitted


def test_expires_requests_whose_deadline_passed_while_queued() -> None:
    q = make_queue(max_batch=2, latency_s=0.010)
    q.submit(req(0, 0.0, deadline=0.050), 0.0)
    q.submit(req(1, 0.0, deadline=1.0), 0.0)
    batch = q.next_batch(0.045)  # 0.045 + 0.010 > 0.050: request 0 can no longer make it
    assert batch is not None
    assert [r.payload for r in batch.expired] == [0]
    assert [r.payload for r in batch.requests] == [1]


def test_shrinks_batch_to_fit_tightest_deadline() -> None:
    q = make_queue(max_batch=4, latency_s=0.010)  # L(b) = 10 ms * b
    q.submit(req(0, 0.0, deadline=0.025), 0.0)  # can afford a batch of 2 at most
    for i in range(1, 4):
        q.submit(req(i, 0.0, deadline=1.0), 0.0)
    batch = q.next_batch(0.0)
    assert batch is not None and [r.payload for r in batch.requests] == [0, 1]
    assert batch.predicted_s == pytest.approx(0.020)


def test_oversized_request_and_full_queue_are_rejected() -> None:
    q = make_queue(max_batch=2, max_queue_rows=2)
    assert not q.submit(req(0, 0.0, rows=3), 0.0).admitted
    assert q.submit(req(1, 0.0, rows=2), 0.0).admitted
    adm = q.submit(req(2, 0.0), 0.0)
    assert not adm.admitted and "full" in adm.reason


def test_completed_feeds_the_estimator() -> None:
    q = make_queue(max_batch=4)
    for i in range(4):
        q.submit(req(i, 0.0), 0.0)
    batch = q.next_batch(0.0)
    assert batch is not None
    q.completed(batch, 0.040, 0.040)
    assert q.estimator.predict_s(4) == pytest.approx(0.040)
    assert q.estimator.predict_s(8) == pytest.approx(0.080)  # extrapolates proportionally
    assert q.in_flight == 0


def test_drain_returns_everything() -> None:
    q = make_queue()
    for i in range(3):
        q.submit(req(i, 0.0), 0.0)
    assert [r.payload for r in q.drain()] == [0, 1, 2]
    assert q.queued_rows == 0 and q.next_batch(0.0) is None


def test_estimator_interpolates_and_is_monotone() -> None:
    est = LatencyEstimator()
    assert est.predict_s(3) == 0.0
    est.observe(1, 0.010)
    est.observe(4, 0.020)
    assert est.predict_s(2) == pytest.approx(0.010 + 0.010 / 3)
    assert est.predict_s(1) <= est.predict_s(2) <= est.predict_s(4)
    assert math.isclose(est.predict_s(0), 0.010)
