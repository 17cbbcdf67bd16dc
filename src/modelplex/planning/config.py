"""Settings shared by every planning policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplex.planning.interference import NO_INTERFERENCE, InterferenceModel


@dataclass(frozen=True)
class PlannerConfig:
    """Knobs of the planners; the defaults follow the gpu-let reference."""

    safety_factor: float = 1.1  # every profiled latency is multiplied by this before planning
    rate_quantile: float = 0.99  # plan for this quantile of a Poisson count of the mean rate (0 = mean)
    rate_window_s: float = 1.0  # window of that Poisson count
    max_batch: int = 32  # largest batch any slice runs (a profile's own max_batch may lower it per model)
    max_processes: int = 8  # most worker processes on one slice (only counts the profiles measured)
    context_mb: float | None = None  # device memory per worker process; None = 1230 on GPUs, 0 on CPUs
    max_models_per_slice: int = 3  # most models time-sharing one slice (elastic)
    max_models_per_device_temporal: int = 8  # most models time-sharing one whole device (temporal)
    max_slices_per_device: int | None = None  # None = the kind's default (MPS 2, MIG 7, CPU cores)
    latency_quantile: str = "p50"  # profile statistic planned on ("p50" or "p99")
    min_step_gain: float = 0.05  # p_eff skips menu steps that gain less throughput than this
    interference: InterferenceModel = field(default=NO_INTERFERENCE)  # slowdown of neighbours
    time_limit_s: float = 10.0  # optimal: CP-SAT time limit
    merge_residues: bool = True  # elastic: merge a model's partial slices into one when it fits
    trim_neighbours: bool = True  # under interference: cut a neighbour to the rate it still serves, not reject
