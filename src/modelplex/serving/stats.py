"""Per-model statistics in the shape of the KServe/Triton statistics extension, and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class Duration:
    """A count and a total in nanoseconds (the extension's unit)."""

    count: int = 0  # events
    ns: int = 0  # summed duration

    def add(self, seconds: float) -> None:
        self.count += 1
        self.ns += int(seconds * 1e9)

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


LATENCY_BASE_MS = 0.05  # upper edge of the first latency bucket
LATENCY_STEPS_PER_OCTAVE = 4  # buckets per doubling: edges 19% apart
LATENCY_BUCKETS = 88  # the last one's upper edge is ~200 s; it also takes anything longer


def latency_edge_ms(k: int) -> float:
    """Upper edge of latency bucket `k` (its lower edge is bucket k-1's, 0 for the first)."""
    return float(LATENCY_BASE_MS * 2.0 ** (k / LATENCY_STEPS_PER_OCTAVE))


@dataclass
class LatencyHistogram:
    """End-to-end latencies of answered requests in log-spaced buckets: the dashboard's p50/p99
    per second come from differences of these counts (an increment per answer, nothing more)."""

    counts: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)  # answers per bucket

    def add(self, seconds: float) -> None:
        ms = seconds * 1e3
        k = 0 if ms <= LATENCY_BASE_MS else math.ceil(math.log2(ms / LATENCY_BASE_MS) * LATENCY_STEPS_PER_OCTAVE)
        self.counts[min(k, LATENCY_BUCKETS - 1)] += 1


@dataclass
class BatchTimes:
    """Times of the batches of one size (the three phases perf_analyzer expects equal counts of)."""

    compute_input: Duration = field(default_factory=Duration)  # assembly and send to the worker
    compute_infer: Duration = field(default_factory=Duration)  # ONNX Runtime in the worker
    compute_output: Duration = field(default_factory=Duration)  # receive and split the outputs

    def add(self, input_s: float, infer_s: float, output_s: float) -> None:
        self.compute_input.add(input_s)
        self.compute_infer.add(infer_s)
        self.compute_output.add(output_s)


@dataclass
class ModelStats:
    """Counters of one model version."""

    success: Duration = field(default_factory=Duration)  # requests answered, end-to-end time
    fail: Duration = field(default_factory=Duration)  # requests failed or rejected
    queue: Duration = field(default_factory=Duration)  # time waiting in the queue
    compute_input: Duration = field(default_factory=Duration)  # batch assembly and send, per request
    compute_infer: Duration = field(default_factory=Duration)  # worker compute, per request
    compute_output: Duration = field(default_factory=Duration)  # receive and split, per request
    rejected_deadline: int = 0  # requests rejected because their deadline was out of reach
    inference_count: int = 0  # rows inferred
    execution_count: int = 0  # batches run
    last_inference_ms: int = 0  # wall-clock ms of the last batch
    batch_sizes: dict[int, "BatchTimes"] = field(default_factory=dict)  # rows -> times per batch
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # end-to-end times of answers

    def to_json(self, name: str, version: str) -> dict[str, Any]:
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                "queue": self.queue.to_json(),
                "compute_input": self.compute_input.to_json(),
                "compute_infer": self.compute_infer.to_json(),
                "compute_output": self.compute_output.to_json(),
                "cache_hit": Duration().to_json(),
                "cache_miss": Duration().to_json(),
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": t.compute_input.to_json(),
                    "compute_infer": t.compute_infer.to_json(),
                    "compute_output": t.compute_output.to_json(),
                }
                for size, t in sorted(self.batch_sizes.items())
            ],
        }


class Metrics:
    """Prometheus metrics of one server (own registry, so several servers never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter("modelplex_requests", "Inference requests answered", labels, registry=self.registry)
        self.failures = Counter(
            "modelplex_request_failures", "Inference requests failed or rejected", labels + ["reason"], registry=self.registry
        )
        self.queue_s = Histogram(
            "modelplex_queue_seconds", "Time requests wait in the queue", labels, buckets=_LATENCY_BUCKETS_S, registry=self.registry
        )
        self.compute_s = Histogram(
            "modelplex_compute_seconds", "Compute time of a batch on its worker", labels, buckets=_LATENCY_BUCKETS_S, registry=self.registry
        )
        self.request_s = Histogram(
            "modelplex_request_seconds", "End-to-end time of answered requests", labels, buckets=_LATENCY_BUCKETS_S, registry=self.registry
        )
        self.batch_rows = Histogram(
            "modelplex_batch_rows", "Rows per executed batch", labels, buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry
        )
