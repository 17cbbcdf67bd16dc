"""Per-model bookkeeping of the serving runtime: the served config, KServe statistics, Prometheus
metrics, SLO attainment; what the runtime keeps with a queued request; and how a batch's inputs
are gathered and its outputs answered request by request."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from modelplex.control.attainment import AttainmentWindow
from modelplex.core.errors import DeadlineError, ModelplexError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.dispatch.batching import QueuedRequest
from modelplex.dispatch.deadlines import ANSWER_MARGIN_S
from modelplex.serving.stats import BatchTimes, Metrics, ModelStats
from modelplex.serving.types import InferOutput, InferRequest, InferResponse


@dataclass
class Pending:
    """What the runtime keeps with a queued request (the policy never looks inside)."""

    request: InferRequest  # the decoded request
    future: asyncio.Future[InferResponse]  # resolved with the answer or an error
    enqueued_s: float  # clock time it was queued
    own_deadline: bool = True  # its deadline is its own or its model's SLO (else the server's longest wait)


Queued = QueuedRequest[Pending]


@dataclass
class ModelBook:
    """Per-model bookkeeping shared by every slice that serves the model."""

    config: ModelConfig  # the model version served
    stats: ModelStats  # KServe statistics
    metrics: Metrics  # Prometheus metrics of the server
    window: AttainmentWindow = field(default_factory=AttainmentWindow)  # within-deadline share, recent seconds

    def __post_init__(self) -> None:
        name, version = self.config.model.name, self.config.model.version
        m = self.metrics
        self.m_requests = m.requests.labels(name, version)
        self.m_fail_deadline = m.failures.labels(name, version, "deadline")
        self.m_fail_error = m.failures.labels(name, version, "error")
        self.m_queue = m.queue_s.labels(name, version)
        self.m_compute = m.compute_s.labels(name, version)
        self.m_request = m.request_s.labels(name, version)
        self.m_rows = m.batch_rows.labels(name, version)

    def rejected(self, deadline: bool, now: float) -> None:
        """A request refused at admission."""
        self.window.record(now, False)
        self.stats.fail.add(0.0)
        if deadline:
            self.stats.rejected_deadline += 1
            self.m_fail_deadline.inc()
        else:
            self.m_fail_error.inc()

    def late(self, req: Queued, what: str) -> ModelplexError:
        """The answer to a request whose time ran out: its deadline, or the server's longest wait
        (the deadline of a request that has none)."""
        model = self.config.model.name
        if req.payload.own_deadline:
            return DeadlineError(f"model {model}: the deadline {what}")
        wait_s = round(req.deadline_s + ANSWER_MARGIN_S - req.arrival_s, 3)
        return UnavailableError(f"model {model}: the server's longest wait of {wait_s:g} s (--max-wait-s) {what}")

    def fail(self, req: Queued, exc: ModelplexError, now: float) -> None:
        """Answer a queued request with an error (expired, worker lost, slice stopped), unless
        it was answered already (its deadline timer, or its client left)."""
        p = req.payload
        if p.future.done():
            return
        p.future.set_exception(exc)
        self.window.record(now, False)
        self.stats.fail.add(now - p.enqueued_s)
        if isinstance(exc, DeadlineError) and p.own_deadline:
            self.stats.rejected_deadline += 1
            self.m_fail_deadline.inc()
        else:
            self.m_fail_error.inc()

    def gather_inputs(self, reqs: list[Queued]) -> list[tuple[str, np.ndarray]]:
        """One array per input, the requests' rows concatenated in order."""
        first = reqs[0].payload.request
        if len(reqs) == 1:
            return [(i.name, i.array) for i in first.inputs]
        by_name = [{i.name: i.array for i in r.payload.request.inputs} for r in reqs]
        return [(spec.name, np.concatenate([d[spec.name] for d in by_name])) for spec in self.config.inputs]

    def wanted_outputs(self, reqs: list[Queued]) -> list[str] | None:
        """The outputs any request of the batch asked for (None: all)."""
        names: set[str] = set()
        for r in reqs:
            outs = r.payload.request.outputs
            if not outs:
                return None
            names.update(o.name for o in outs)
        return [o.name for o in self.config.outputs if o.name in names]

    def batch_done(self, rows: int, latency_s: float, compute_s: float) -> tuple[float, float, float]:
        """Statistics of a finished batch; returns its phases (input, infer, output) in seconds."""
        st = self.stats
        st.execution_count += 1
        st.inference_count += rows
        st.last_inference_ms = int(time.time() * 1000)
        # the worker measured compute_s; the rest of the round trip is split as input (assembly,
        # send) and output (receive, split), half each: both are the same channel's copies
        overhead_s = max(0.0, latency_s - compute_s) / 2
        st.batch_sizes.setdefault(rows, BatchTimes()).add(overhead_s, compute_s, overhead_s)
        self.m_compute.observe(compute_s)
        self.m_rows.observe(rows)
        return overhead_s, compute_s, overhead_s

    def answer(
        self, reqs: list[Queued], outputs: list[tuple[str, np.ndarray]], phases_s: tuple[float, float, float],
        started: float, done: float,
    ) -> None:
        """Split the batch's outputs by request and resolve each request's future; one whose
        deadline passed meanwhile gets the deadline's error instead (never an answer run late)."""
        config = self.config
        dtypes = {o.name: o.datatype for o in config.outputs}
        pos = 0
        single = len(reqs) == 1
        st = self.stats
        for r in reqs:
            p = r.payload
            if p.future.done():  # answered already (its deadline passed, or its client left)
                pos += r.rows
                continue
            if done > r.deadline_s:  # the loop was held up past its deadline timer
                pos += r.rows
                self.fail(r, self.late(r, "passed before the answer was ready"), done)
                continue
            mine = outputs if single or not config.batched else [(n, a[pos : pos + r.rows]) for n, a in outputs]
            pos += r.rows
            wanted = p.request.outputs
            order = [o.name for o in wanted] if wanted else [n for n, _ in mine]
            arrays = dict(mine)
            response = InferResponse(
                model=config.model.name, version=config.model.version, id=p.request.id,
                outputs=[InferOutput(n, dtypes[n], tuple(arrays[n].shape), arrays[n]) for n in order],
            )
            p.future.set_result(response)
            self.window.record(done, True)
            st.success.add(done - p.enqueued_s)
            st.latency.add(done - p.enqueued_s)
            st.queue.add(started - p.enqueued_s)
            st.compute_input.add(phases_s[0])
            st.compute_infer.add(phases_s[1])
            st.compute_output.add(phases_s[2])
            self.m_requests.inc()
            self.m_queue.observe(started - p.enqueued_s)
            self.m_request.observe(done - p.enqueued_s)
