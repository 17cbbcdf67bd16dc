"""SliceScheduler and Router: decide on a fake clock (time is an argument), table-driven."""

from __future__ import annotations

import pytest

from modelplex.core.model import BatchingConfig
from modelplex.dispatch.batching import NO_DEADLINE, BatchPolicyConfig, QueuedRequest
from modelplex.dispatch.router import Router
from modelplex.dispatch.scheduler import Lane, SliceScheduler, make_lane
from modelplex.dispatch.latency import LatencyEstimator


def fixed(latency_s: float) -> LatencyEstimator:
    return LatencyEstimator(prior_s=lambda rows: latency_s * rows)


def lane(model: str, batch: int = 4, per_row_s: float = 0.001, delay_s: float = 0.0) -> Lane:
    return Lane(model, BatchPolicyConfig(max_batch_size=batch, max_queue_delay_s=delay_s), batch, fixed(per_row_s))


def req(t: float, deadline: float = NO_DEADLINE, rows: int = 1, payload: int = 0) -> QueuedRequest[int]:
    return QueuedRequest(t, deadline, rows, payload)


def test_turns_alternate_between_models_and_one_batch_runs_at_a_time() -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a"), lane("b")], duty_cycle_ms=10.0)
    for i in range(3):
        assert s.submit("a", req(0.0, payload=i), 0.0).admitted
        assert s.submit("b", req(0.0, payload=10 + i), 0.0).admitted
    first = s.schedule(0.0)
    assert first is not None and first.model == "a" and [r.payload for r in first.requests] == [0, 1, 2]
    assert s.schedule(0.0) is None and s.wake_at(0.0) is None  # the slot is taken: wait for completion
    s.completed(first, 0.003, 0.003)
    second = s.schedule(0.003)
    assert second is not None and second.model == "b"


@pytest.mark.parametrize(
    "processes, expected_running",
    [(1, 1), (2, 2), (3, 2)],  # at most `processes` batches at once; 2 models' queues give 2 batches
)
def test_segments_run_several_batches_at_once(processes: int, expected_running: int) -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a", batch=1), lane("b", batch=1)], processes=processes)
    s.submit("a", req(0.0), 0.0)
    s.submit("b", req(0.0), 0.0)
    n = 0
    while (d := s.schedule(0.0)) is not None:
        n += bool(d.requests)
    assert n == expected_running == s.running


@pytest.mark.parametrize(
    "deadline_s, admitted, deadline_reason",
    [
        (0.010, True, False),  # 1 ms of work ahead: fits
        (0.0005, False, True),  # cannot finish in 0.5 ms: rejected now, not run late
    ],
)
def test_admission_rejects_what_cannot_meet_its_deadline(deadline_s: float, admitted: bool, deadline_reason: bool) -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a")])
    a = s.submit("a", req(0.0, deadline=deadline_s), 0.0)
    assert (a.admitted, a.deadline) == (admitted, deadline_reason)


def test_expired_requests_come_back_before_the_next_batch() -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a", batch=1)])
    s.submit("a", req(0.0, deadline=0.0101, payload=1), 0.0)
    s.submit("a", req(0.0, deadline=0.0102, payload=2), 0.0)
    d = s.schedule(0.0)
    assert d is not None and [r.payload for r in d.requests] == [1]
    s.completed(d, 0.0105, 0.0105)  # ran long: request 2 can no longer make it
    late = s.schedule(0.0105)
    assert late is not None and late.requests == [] and [r.payload for _, r in late.expired] == [2]
    assert s.idle


def test_queue_delay_waits_then_wakes() -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a", batch=8, delay_s=0.002)])
    s.submit("a", req(0.0), 0.0)
    assert s.schedule(0.0) is None
    assert s.wake_at(0.0) == pytest.approx(0.002)
    d = s.schedule(0.002)
    assert d is not None and d.rows == 1


def test_refusal_and_set_batch() -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [Lane("a", BatchPolicyConfig(max_batch_size=4), 8)])
    s.set_batch("a", 16)
    assert s.batch_size("a") == 8  # never above the model's own limit
    s.refuse("slice s is stopping")
    a = s.submit("a", req(0.0), 0.0)
    assert not a.admitted and a.reason == "slice s is stopping"
    s.refuse(None)
    assert s.submit("a", req(0.0), 0.0).admitted


@pytest.mark.parametrize(
    "planned, max_batch, delay_us, want_rows, want_delay_s",
    [
        (4, 16, 500, 4, 0.0005),  # the plan's batch, the model's queue delay
        (None, 16, 0, 16, 0.0),  # no plan: the model's own limit
        (8, 0, 0, 1, 0.0),  # a model without a batch axis runs one at a time
    ],
)
def test_make_lane_is_the_same_for_both_drivers(planned: int | None, max_batch: int, delay_us: int, want_rows: int, want_delay_s: float) -> None:
    got = make_lane("m", planned, BatchingConfig(max_batch_size=max_batch, max_queue_delay_us=delay_us))
    assert (got.policy.max_batch_size, got.policy.max_queue_delay_s) == (want_rows, want_delay_s)


def test_router_follows_plan_shares() -> None:
    a: SliceScheduler[int] = SliceScheduler("a", [lane("m", batch=1)])
    b: SliceScheduler[int] = SliceScheduler("b", [lane("m", batch=1)])
    r: Router[int] = Router("m", [(a, 0.75), (b, 0.25)])
    picks = [r.route(req(0.0), 0.0).slice for _ in range(8)]
    assert picks.count(a) == 6 and picks.count(b) == 2  # smooth weighted round robin: 3:1


def test_router_passes_a_request_on_when_its_slice_cannot_meet_the_deadline() -> None:
    slow: SliceScheduler[int] = SliceScheduler("slow", [lane("m", batch=1, per_row_s=0.010)])
    fast: SliceScheduler[int] = SliceScheduler("fast", [lane("m", batch=1, per_row_s=0.001)])
    r: Router[int] = Router("m", [(slow, 0.9), (fast, 0.1)])
    assert r.route(req(0.0, deadline=0.005), 0.0).slice is fast  # the plan says slow; only fast makes it
    probe = req(0.0, deadline=0.0001)  # no slice makes it, nothing was measured yet: one probe runs
    assert r.route(probe, 0.0).slice is slow and probe.probe
    refused = r.route(req(0.0, deadline=0.0001), 0.0)  # the next one is refused
    assert refused.slice is None and refused.admission.deadline


def test_router_prefers_accepting_slices() -> None:
    a: SliceScheduler[int] = SliceScheduler("a", [lane("m")])
    b: SliceScheduler[int] = SliceScheduler("b", [lane("m")])
    a.refuse("slice a is stopping")
    r: Router[int] = Router("m", [(a, 0.5), (b, 0.5)])
    assert all(r.route(req(0.0), 0.0).slice is b for _ in range(4))


@pytest.mark.parametrize(
    ("running", "deadline", "refuses"),
    [
        (False, 0.005, False),  # idle: the admission (and a probe) decide, not the early check
        (True, 0.005, True),  # a 10 ms batch runs: a 5 ms deadline is out of reach
        (True, 0.050, False),  # ... a 50 ms one is not
    ],
)
def test_a_busy_slice_refuses_before_decoding(running: bool, deadline: float, refuses: bool) -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("m", batch=1, per_row_s=0.010)])
    r: Router[int] = Router("m", [(s, 1.0)])
    if running:
        assert s.submit("m", req(0.0), 0.0).admitted
        assert s.schedule(0.0) is not None
    assert r.refuses_busy(1, deadline, 0.0) is refuses


@pytest.mark.parametrize(
    "depth, dispatched",
    [(1, 1), (2, 2), (3, 3)],  # one process: the running batch and depth - 1 queued behind it
)
def test_a_deeper_slice_hands_its_process_batches_queued_behind_the_running_one(depth: int, dispatched: int) -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a", batch=2, per_row_s=0.005)], depth=depth)
    for i in range(8):
        s.submit("a", req(0.0, payload=i), 0.0)
    batches = []
    while (d := s.schedule(0.0)) is not None:
        batches.append(d)
    assert len(batches) == dispatched == s.running
    assert all(d.rows == 2 for d in batches)


@pytest.mark.parametrize(
    "deadline_s, admitted",
    [
        (0.025, True),  # a batch of 10 ms runs, one of 10 ms waits behind it: this one ends at 25 ms
        (0.020, False),  # it would need the process before the queued batch is through
    ],
)
def test_admission_counts_the_batch_queued_behind_the_running_one(deadline_s: float, admitted: bool) -> None:
    s: SliceScheduler[int] = SliceScheduler("s", [lane("a", batch=2, per_row_s=0.005)], depth=2)
    for i in range(4):
        s.submit("a", req(0.0, payload=i), 0.0)
    assert s.schedule(0.0) is not None and s.schedule(0.0) is not None  # running, and queued behind it
    assert s.submit("a", req(0.0, deadline=deadline_s), 0.0).admitted == admitted


def test_depth_needs_a_slice_of_one_model() -> None:
    with pytest.raises(ValueError, match="one model"):
        SliceScheduler("s", [lane("a"), lane("b")], depth=2)
