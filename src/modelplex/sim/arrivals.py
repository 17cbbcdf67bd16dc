"""Request arrival traces: Poisson, bursty (gamma inter-arrivals), step-changing rates, CSV.

A trace is two arrays sorted by time: arrival times (s) and the model index of each arrival.
Everything is drawn from a numpy Generator the caller seeds.

Trace SPEC (CLI):  KIND[:key=value,...]
    poisson[:scale=F]                 Poisson at F x each model's rate (default 1)
    gamma[:scale=F,cv=C]              gamma inter-arrivals with coefficient of variation C (bursty)
    step:at=T0/F0;T1/F1;...           Poisson whose scale is F_i from time T_i on
    csv:path=FILE                     one arrival per row: time_s,model (header line optional)
Model rates come from the plan's demand (or its served rates when the plan has none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelplex.core.errors import InvalidArgumentError

Trace = tuple[np.ndarray, np.ndarray]  # (times_s float64, model index int32), sorted by time


@dataclass(frozen=True)
class TraceSpec:
    """A parsed trace SPEC."""

    kind: str  # poisson | gamma | step | csv
    scale: float = 1.0  # multiplier on every model's rate
    cv: float = 1.0  # gamma: coefficient of variation of inter-arrival times
    steps: tuple[tuple[float, float], ...] = field(default_factory=tuple)  # step: (from_s, scale)
    path: str = ""  # csv: file of arrivals


def parse_trace_spec(spec: str) -> TraceSpec:
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    opts: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise InvalidArgumentError(f"trace: expected key=value in {spec!r}, got {part!r}")
        opts[key.strip()] = value.strip()
    try:
        scale = float(opts.pop("scale", "1"))
        cv = float(opts.pop("cv", "1"))
        steps: tuple[tuple[float, float], ...] = ()
        if "at" in opts:
            pairs = [p.split("/") for p in opts.pop("at").split(";") if p]
            steps = tuple(sorted((float(t), float(f)) for t, f in pairs))
    except ValueError:
        raise InvalidArgumentError(f"trace: cannot read numbers in {spec!r}") from None
    path = opts.pop("path", "")
    if opts:
        raise InvalidArgumentError(f"trace: unknown option(s) {', '.join(sorted(opts))} in {spec!r}")
    if kind not in ("poisson", "gamma", "step", "csv"):
        raise InvalidArgumentError(f"trace: unknown kind {kind!r}; use poisson, gamma, step or csv")
    if scale < 0 or cv <= 0 or any(f < 0 for _, f in steps):
        raise InvalidArgumentError("trace: scale must be >= 0 and cv > 0")
    if kind == "step" and not steps:
        raise InvalidArgumentError("trace: step needs at=T0/F0;T1/F1;...")
    if kind == "csv" and not path:
        raise InvalidArgumentError("trace: csv needs path=FILE")
    return TraceSpec(kind, scale, cv, steps, path)


def poisson_times(rate_rps: float, start_s: float, end_s: float, rng: np.random.Generator) -> np.ndarray:
    if rate_rps <= 0 or end_s <= start_s:
        return np.empty(0)
    n = rng.poisson(rate_rps * (end_s - start_s))
    return np.sort(rng.uniform(start_s, end_s, n))


def gamma_times(rate_rps: float, cv: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    if rate_rps <= 0:
        return np.empty(0)
    shape = 1.0 / (cv * cv)
    scale = 1.0 / (rate_rps * shape)
    chunks: list[np.ndarray] = []
    t = 0.0
    while t < duration_s:
        n = int(rate_rps * (duration_s - t) * 1.1) + 16
        gaps = rng.gamma(shape, scale, n)
        times = t + np.cumsum(gaps)
        chunks.append(times)
        t = float(times[-1])
    out = np.concatenate(chunks)
    return out[out < duration_s]


def merge(per_model: Sequence[np.ndarray]) -> Trace:
    times = np.concatenate([np.asarray(a, dtype=np.float64) for a in per_model]) if per_model else np.empty(0)
    idx = np.concatenate([np.full(len(a), i, dtype=np.int32) for i, a in enumerate(per_model)]) if per_model else np.empty(0, np.int32)
    order = np.argsort(times, kind="stable")
    return times[order], idx[order]


def generate(spec: TraceSpec, rates_rps: Sequence[float], duration_s: float, rng: np.random.Generator) -> Trace:
    """Arrivals of every model (index = position in `rates_rps`) over [0, duration_s)."""
    if spec.kind == "poisson":
        return merge([poisson_times(r * spec.scale, 0.0, duration_s, rng) for r in rates_rps])
    if spec.kind == "gamma":
        return merge([gamma_times(r * spec.scale, spec.cv, duration_s, rng) for r in rates_rps])
    if spec.kind == "step":
        bounds = [*spec.steps, (duration_s, 0.0)]
        per_model = []
        for r in rates_rps:
            parts = [poisson_times(r * f, t0, min(t1, duration_s), rng) for (t0, f), (t1, _) in zip(bounds, bounds[1:])]
            per_model.append(np.concatenate(parts) if parts else np.empty(0))
        return merge(per_model)
    raise InvalidArgumentError(f"trace: {spec.kind} traces are read with read_csv_trace")


def read_csv_trace(text: str, models: Mapping[str, int], duration_s: float) -> Trace:
    """Parse `time_s,model` rows; rows of models the plan does not serve are an error."""
    times: list[float] = []
    idx: list[int] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 2:
            raise InvalidArgumentError(f"trace: line {n}: expected time_s,model")
        try:
            t = float(cells[0])
        except ValueError:
            if n == 1:
                continue  # header
            raise InvalidArgumentError(f"trace: line {n}: bad time {cells[0]!r}") from None
        if cells[1] not in models:
            raise InvalidArgumentError(f"trace: line {n}: model {cells[1]!r} is not in the plan")
        if 0 <= t < duration_s:
            times.append(t)
            idx.append(models[cells[1]])
    arr_t = np.asarray(times, dtype=np.float64)
    arr_i = np.asarray(idx, dtype=np.int32)
    order = np.argsort(arr_t, kind="stable")
    return arr_t[order], arr_i[order]
