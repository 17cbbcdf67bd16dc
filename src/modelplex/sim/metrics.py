"""What a simulated run reports: per-model and total SLO attainment, goodput, latency, drops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# request outcome codes in the simulator's status array
PENDING, OK, LATE, REJECTED, EXPIRED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ModelStats:
    """One model's outcome over the measured window."""

    model: str  # model name
    requests: int  # arrivals counted (after warm-up)
    ok: int  # answered within the SLO
    late: int  # answered after the SLO
    dropped: int  # rejected at submit or expired in the queue
    attainment: float  # ok / requests (1.0 when no requests)
    goodput_rps: float  # ok per second of the measured window
    p50_ms: float  # median latency of answered requests
    p99_ms: float  # 99th percentile latency of answered requests

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SimResult:
    """A whole run."""

    duration_s: float  # simulated arrival window
    warmup_s: float  # excluded from the statistics
    models: tuple[ModelStats, ...]  # per model
    total: ModelStats  # over every model
    events: int  # events processed (arrivals + completions + wake-ups)

    def to_json(self) -> dict[str, object]:
        return {
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "events": self.events,
            "total": self.total.to_json(),
            "models": [m.to_json() for m in self.models],
        }


def summarise(
    name: str, status: np.ndarray, latency_s: np.ndarray, window_s: float
) -> ModelStats:
    n = int(len(status))
    ok = int(np.count_nonzero(status == OK))
    late = int(np.count_nonzero(status == LATE))
    dropped = n - ok - late
    done = latency_s[(status == OK) | (status == LATE)]
    p50, p99 = (float(np.percentile(done, 50) * 1e3), float(np.percentile(done, 99) * 1e3)) if len(done) else (0.0, 0.0)
    return ModelStats(
        model=name,
        requests=n,
        ok=ok,
        late=late,
        dropped=dropped,
        attainment=ok / n if n else 1.0,
        goodput_rps=ok / window_s if window_s > 0 else 0.0,
        p50_ms=p50,
        p99_ms=p99,
    )


def format_result(result: SimResult) -> str:
    head = f"{'model':<16} {'requests':>9} {'attain%':>8} {'goodput':>10} {'p50 ms':>8} {'p99 ms':>8} {'late':>7} {'dropped':>8}"
    lines = [head, "-" * len(head)]
    for m in (*result.models, result.total):
        lines.append(
            f"{m.model:<16} {m.requests:>9} {100 * m.attainment:>8.2f} {m.goodput_rps:>10.1f} "
            f"{m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {m.late:>7} {m.dropped:>8}"
        )
    return "\n".join(lines)
