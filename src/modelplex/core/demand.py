"""What traffic a model must serve."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    """Per model: request rate and latency SLO (and, for tasks, an accuracy floor)."""

    model: str  # model name
    rate_rps: float  # mean request arrival rate
    slo_ms: float  # end-to-end latency objective of each request
    min_accuracy: float | None = None  # task queries only: the accuracy floor
