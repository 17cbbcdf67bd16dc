"""Timing one model on one slice with the real worker process: warm-up, then adaptive repeats.

The latency of a batch is the compute time the worker measures around session.run, so the
socket transfer and the profiler's own scheduling do not count (the planner adds them apart).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelplex.core.model import ModelConfig
from modelplex.core.profile import ProfilePoint
from modelplex.profiling.backends import SliceBackend
from modelplex.profiling.inputs import nbytes, synthesize
from modelplex.profiling.stats import StopRule, quantile_ms
from modelplex.runtime.worker_handle import WorkerHandle


@dataclass(frozen=True)
class Warmup:
    """Untimed runs before timing a point (first runs allocate buffers and fault in pages)."""

    runs: int = 3  # at least this many untimed runs
    min_s: float = 0.1  # and at least this long


@dataclass(frozen=True)
class SliceResult:
    """What one worker on one slice measured."""

    points: tuple[ProfilePoint, ...]  # one per batch measured
    memory_mb: float  # worker resident memory after the largest batch
    load_s: float  # wall time to start the worker and load the model
    io_bytes: dict[int, int]  # batch -> input + output bytes of one batch


OnPoint = Callable[[ProfilePoint], None]


async def time_batch(handle: WorkerHandle, config: ModelConfig, batch: int, rule: StopRule,
                     warmup: Warmup) -> tuple[ProfilePoint, int]:
    """Time one batch size; returns the point and the input+output bytes of one batch."""
    inputs = synthesize(config, batch)
    t0 = time.monotonic()
    outputs, _ = await handle.run(inputs, None)
    io = nbytes(inputs) + nbytes(outputs)
    runs = 1
    while runs < warmup.runs or time.monotonic() - t0 < warmup.min_s:
        await handle.run(inputs, None)
        runs += 1
    samples: list[float] = []
    t_start = time.monotonic()
    while not rule.done(samples, time.monotonic() - t_start):
        _, compute_s = await handle.run(inputs, None)
        samples.append(compute_s)
    mean_s = sum(samples) / len(samples)
    point = ProfilePoint(
        slice_size=handle.slice.size,
        batch=batch,
        p50_ms=quantile_ms(samples, 0.5),
        p99_ms=quantile_ms(samples, 0.99),
        throughput_rps=batch / mean_s if mean_s > 0 else 0.0,
        samples=len(samples),
    )
    return point, io


async def measure_slice(config: ModelConfig, backend: SliceBackend, size: int, batches: Sequence[int],
                        rule: StopRule, warmup: Warmup = Warmup(),
                        on_point: OnPoint | None = None) -> SliceResult:
    """Start a worker on a slice of `size`, time every batch (ascending), stop the worker."""
    spec = backend.slice_spec(size)
    t0 = time.monotonic()
    handle, _info = await backend.start(f"profile:{config.model.name}@{spec.label}", config.path, spec)
    load_s = time.monotonic() - t0
    points: list[ProfilePoint] = []
    io: dict[int, int] = {}
    try:
        for batch in sorted(batches):
            point, io[batch] = await time_batch(handle, config, batch, rule, warmup)
            points.append(point)
            if on_point is not None:
                on_point(point)
        memory_mb = await handle.memory_mb()
    finally:
        await handle.stop()
    return SliceResult(tuple(points), memory_mb, load_s, io)


