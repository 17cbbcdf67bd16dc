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
    est.observe(1, 0.010, 0.0)
    est.observe(4, 0.020, 0.0)
    assert est.predict_s(2) == pytest.approx(0.010 + 0.010 / 3)
    assert est.predict_s(1) <= est.predict_s(2) <= est.predict_s(4)
    assert math.isclose(est.predict_s(0), 0.010)


# ---- estimates that recover ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("samples", "expect_s"),
    [
        ([0.010] * 7 + [0.300], 0.010),  # one batch held up by a paused worker: ignored
        ([0.300] + [0.010] * 7, 0.010),  # ... whether first or last
        ([0.010] * 4 + [0.030] * 4, 0.020),  # a real change moves the median
        ([0.030] * 8, 0.030),
    ],
)
def test_the_estimate_is_the_median_of_recent_batches(samples: list[float], expect_s: float) -> None:
    est = LatencyEstimator()
    for t, s in enumerate(samples):
        est.observe(1, s, float(t))
    assert est.predict_s(1) == pytest.approx(expect_s)


@pytest.mark.parametrize(
    ("prior", "age_s", "expect_s"),
    [
        (None, 5.0, 0.300),  # still recent
        (None, 11.0, 0.0),  # aged out: nothing known, admit optimistically
        (0.010, 11.0, 0.010),  # aged out: the profile's prior again
    ],
)
def test_measurements_age_out(prior: float | None, age_s: float, expect_s: float) -> None:
    est = LatencyEstimator(prior_s=(lambda b: prior * b) if prior is not None else None, max_age_s=10.0)
    est.observe(1, 0.300, 0.0)
    est.age(age_s)
    assert est.predict_s(1) == pytest.approx(expect_s)


def locked_out_queue() -> BatchQueue[int]:
    """A queue whose estimate went up to 300 ms (a stall) for a 50 ms deadline."""
    q = make_queue(max_batch=1)
    q.estimator.observe(1, 0.300, 0.0)
    return q


@pytest.mark.parametrize(
    ("now", "probe", "queued_first", "admitted"),
    [
        (1.0, False, False, False),  # without probing: rejected
        (1.0, True, False, True),  # nothing ran for 1 s: one request probes
        (0.2, True, False, False),  # measured 0.2 s ago: the estimate is fresh, no probe
        (1.0, True, True, False),  # something is queued: it will measure, no probe
    ],
)
def test_a_stale_estimate_is_probed(now: float, probe: bool, queued_first: bool, admitted: bool) -> None:
    q = locked_out_queue()
    if queued_first:
        assert q.submit(req(0, now), now).admitted  # no deadline: queued whatever the estimate
    assert q.submit(req(1, now, deadline=now + 0.050), now, probe).admitted is admitted


def test_a_probe_runs_once_per_interval_and_its_batch_corrects_the_estimate() -> None:
    q = locked_out_queue()
    assert q.submit(req(1, 1.0, deadline=1.050), 1.0, probe=True).admitted
    batch = q.next_batch(1.0)
    assert batch is not None and [r.payload for r in batch.requests] == [1]  # not expired: it runs
    assert not q.submit(req(2, 1.001, deadline=1.051), 1.001, probe=True).admitted  # one at a time
    for t in range(4):  # the probe and three more measure 10 ms
        q.estimator.observe(1, 0.010, 1.01 + t)
    assert q.estimator.predict_s(1) == pytest.approx(0.010)
    assert q.submit(req(3, 5.0, deadline=5.050), 5.0).admitted  # admitted on the estimate alone again


def test_cancelled_requests_are_dropped_not_run_nor_expired() -> None:
    q = make_queue(max_batch=4, latency_s=0.010)
    reqs = [req(i, 0.0, deadline=1.0) for i in range(4)]
    for r in reqs:
        assert q.submit(r, 0.0).admitted
    reqs[0].cancelled = reqs[2].cancelled = True
    batch = q.next_batch(0.0)
    assert batch is not None and [r.payload for r in batch.requests] == [1, 3] and not batch.expired
    assert q.queued_rows == 0 and q.next_batch(0.1) is None
