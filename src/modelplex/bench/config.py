"""The YAML of `modelplex bench`, read and checked whole before anything starts (pure but for
reading the config and trace files). Every problem is an InvalidArgumentError whose message
starts with the field it is about, e.g. `models[1].slo_ms: must be a number > 0, got -5`.

    url: http://127.0.0.1:8000   # a running server; or `repository: DIR` to start one
    protocol: binary             # binary (default) | json
    arrival: poisson             # poisson | gamma (with cv:) | trace (with trace: FILE)
    rates: [50, 100]             # total req/s, a ladder; or `rate:` / per-model `rate(s):`
    duration_s: 10               # per rate
    models:
      - {name: cnn, slo_ms: 50}
      - {task: digits, slo_ms: 30, min_accuracy: 0.9}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelplex.core.errors import InvalidArgumentError

TOP_KEYS = frozenset({
    "url", "repository", "serve_args", "protocol", "arrival", "cv", "trace", "rate", "rates", "duration_s",
    "seed", "max_in_flight", "timeout_s", "late_ms", "warmup_requests", "models",
})
MODEL_KEYS = frozenset({"name", "task", "slo_ms", "weight", "rate", "rates", "min_accuracy"})
ARRIVALS = ("poisson", "gamma", "trace")
PROTOCOLS = ("binary", "json")
MAX_RATE = 1e6  # req/s; beyond it a typo, not a load test
MAX_DURATION_S = 86_400.0


@dataclass(frozen=True)
class ModelLoad:
    """One target of the load: a model, or a task served model-less (/v2/tasks/TASK/infer)."""

    name: str  # model or task name
    is_task: bool  # True: `task:` (model-less), False: `name:`
    slo_ms: float | None  # answers slower than this are not good (None: every answer is)
    rates: tuple[float, ...]  # req/s per rung of the ladder
    min_accuracy: float | None = None  # a task's accuracy floor

    @property
    def label(self) -> str:
        return f"task:{self.name}" if self.is_task else self.name


@dataclass(frozen=True)
class Trace:
    """Arrival times (seconds from the start, sorted) read from a file, with each line's model if named."""

    path: Path
    times_s: tuple[float, ...]
    models: tuple[str | None, ...]


@dataclass(frozen=True)
class BenchConfig:
    url: str | None  # a running server's base URL
    repository: Path | None  # else: start `modelplex serve` on this repository
    serve_args: tuple[str, ...]  # extra flags of that server
    protocol: str
    arrival: str
    cv: float  # gamma: coefficient of variation of the gaps between arrivals
    trace: Trace | None
    models: tuple[ModelLoad, ...]
    duration_s: float  # per rung
    seed: int
    max_in_flight: int
    timeout_s: float  # client timeout per request
    late_s: float  # a request not sent this long after its scheduled time is client-late
    warmup_requests: int  # per model, before the first rung (not counted)

    @property
    def rungs(self) -> int:
        return len(self.models[0].rates)


def fail(field: str, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{field}: {problem}")


def load_config(path: Path) -> BenchConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise fail("config", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail("config", f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    return parse_config(doc, path.parent)


def _number(doc: dict[str, Any], key: str, field: str, default: float | None, low: float = 0.0,
            high: float = math.inf, strict: bool = True) -> float | None:
    value = doc.get(key, default)
    if value is None:
        return None
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    if bad or value < low or (strict and value == low) or value > high:
        cmp = ">" if strict else ">="
        raise fail(field, f"must be a number {cmp} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
                   + f", got {value!r}")
    return float(value)


def _int(doc: dict[str, Any], key: str, default: int, low: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise fail(key, f"must be an integer >= {low}, got {value!r}")
    return value


def _choice(doc: dict[str, Any], key: str, options: tuple[str, ...]) -> str:
    value = doc.get(key, options[0])
    if value not in options:
        raise fail(key, f"must be one of {', '.join(options)}, got {value!r}")
    return str(value)


def _rates(doc: dict[str, Any], field: str) -> tuple[float, ...] | None:
    if "rate" in doc and "rates" in doc:
        raise fail(f"{field}rates", "give `rate` or `rates`, not both")
    if "rate" in doc:
        return (float(_number(doc, "rate", f"{field}rate", None, high=MAX_RATE) or 0.0),)
    if "rates" not in doc:
        return None
    value = doc["rates"]
    if not isinstance(value, list) or not value:
        raise fail(f"{field}rates", f"must be a non-empty list of req/s, got {value!r}")
    return tuple(float(_number({"r": v}, "r", f"{field}rates[{i}]", None, high=MAX_RATE) or 0.0)
                 for i, v in enumerate(value))


def _unknown(doc: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in doc:
        if key not in allowed:
            raise fail(f"{where}{key}", f"unknown key (known: {', '.join(sorted(allowed))})")


def parse_config(doc: Any, base: Path) -> BenchConfig:
    """Check the whole document; relative paths are relative to `base` (the config's folder)."""
    if not isinstance(doc, dict):
        raise fail("config", f"must be a mapping of keys like url, models, rates; got {type(doc).__name__}")
    _unknown(doc, TOP_KEYS, "")
    url, repository = _target(doc, base)
    serve_args = doc.get("serve_args", [])
    if not isinstance(serve_args, list) or not all(isinstance(a, (str, int, float)) for a in serve_args):
        raise fail("serve_args", f"must be a list of `modelplex serve` flags, got {serve_args!r}")
    if serve_args and repository is None:
        raise fail("serve_args", "only with `repository:` (a server bench starts)")
    protocol = _choice(doc, "protocol", PROTOCOLS)
    arrival = _choice(doc, "arrival", ARRIVALS)
    cv = float(_number(doc, "cv", "cv", 1.0, high=100.0) or 1.0)
    if "cv" in doc and arrival != "gamma":
        raise fail("cv", "only with `arrival: gamma`")
    trace = _trace(doc, base) if arrival == "trace" else None
    if "trace" in doc and arrival != "trace":
        raise fail("trace", "only with `arrival: trace`")
    duration = _number(doc, "duration_s", "duration_s", None if trace else 10.0, high=MAX_DURATION_S)
    models = _models(doc, trace)
    if trace is not None:
        _check_trace_models(trace, models)
    return BenchConfig(
        url=url, repository=repository, serve_args=tuple(str(a) for a in serve_args), protocol=protocol,
        arrival=arrival, cv=cv, trace=trace, models=models,
        duration_s=duration if duration is not None else (trace.times_s[-1] if trace and trace.times_s else 0.0),
        seed=_int(doc, "seed", 0, 0), max_in_flight=_int(doc, "max_in_flight", 512, 1),
        timeout_s=float(_number(doc, "timeout_s", "timeout_s", 30.0, high=3600.0) or 30.0),
        late_s=float(_number(doc, "late_ms", "late_ms", 100.0, high=60_000.0) or 100.0) / 1e3,
        warmup_requests=_int(doc, "warmup_requests", 5, 0),
    )


def _target(doc: dict[str, Any], base: Path) -> tuple[str | None, Path | None]:
    url, repo = doc.get("url"), doc.get("repository")
    if (url is None) == (repo is None):
        raise fail("url", "give exactly one target: `url:` (a running server) or `repository:` (start one)")
    if url is not None:
        if not isinstance(url, str) or not url.startswith("http://"):
            raise fail("url", f"must be an http:// address like http://127.0.0.1:8000, got {url!r}")
        return url.rstrip("/"), None
    if not isinstance(repo, str) or not (base / repo).is_dir():
        raise fail("repository", f"must be a model repository folder, got {repo!r}")
    return None, base / repo


def _models(doc: dict[str, Any], trace: Trace | None) -> tuple[ModelLoad, ...]:
    entries = doc.get("models")
    if not isinstance(entries, list) or not entries:
        raise fail("models", "must be a non-empty list of {name: MODEL} or {task: TASK} entries")
    total = _rates(doc, "")
    loads: list[ModelLoad] = []
    weights: list[float] = []
    for i, entry in enumerate(entries):
        where = f"models[{i}]."
        if not isinstance(entry, dict):
            raise fail(f"models[{i}]", f"must be a mapping like {{name: cnn, slo_ms: 50}}, got {entry!r}")
        _unknown(entry, MODEL_KEYS, where)
        if ("name" in entry) == ("task" in entry):
            raise fail(f"{where}name", "give `name:` (a model) or `task:` (model-less), exactly one")
        is_task = "task" in entry
        name = entry["task" if is_task else "name"]
        if not isinstance(name, str) or not name:
            raise fail(f"{where}{'task' if is_task else 'name'}", f"must be a non-empty string, got {name!r}")
        if "min_accuracy" in entry and not is_task:
            raise fail(f"{where}min_accuracy", "only for a `task:` entry")
        own = _rates(entry, where)
        if own is not None and total is not None:
            raise fail(f"{where}rates", "the config already gives a total `rate(s)`: give one or the other")
        weights.append(float(_number(entry, "weight", f"{where}weight", 1.0) or 1.0))
        if "weight" in entry and total is None:
            raise fail(f"{where}weight", "only with a total `rate(s)` to split")
        loads.append(ModelLoad(name, is_task, _number(entry, "slo_ms", f"{where}slo_ms", None, high=3.6e6), own or (),
                               _number(entry, "min_accuracy", f"{where}min_accuracy", None, high=1.0, strict=False)))
    labels = [m.label for m in loads]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise fail(f"models[{i}]", f"{label} is listed twice")
    return _split_rates(loads, weights, total, trace)


def _split_rates(loads: list[ModelLoad], weights: list[float], total: tuple[float, ...] | None,
                 trace: Trace | None) -> tuple[ModelLoad, ...]:
    if total is not None:
        share = [w / sum(weights) for w in weights]
        return tuple(ModelLoad(m.name, m.is_task, m.slo_ms, tuple(r * s for r in total), m.min_accuracy)
                     for m, s in zip(loads, share))
    if trace is not None and all(not m.rates for m in loads):
        return tuple(loads)  # the trace replayed as it is
    for i, m in enumerate(loads):
        if not m.rates:
            raise fail(f"models[{i}].rates", "missing: give a total `rate(s)` or every model its own")
        if len(m.rates) != len(loads[0].rates):
            raise fail(f"models[{i}].rates", f"has {len(m.rates)} rungs, models[0] has {len(loads[0].rates)}")
    return tuple(loads)


def _trace(doc: dict[str, Any], base: Path) -> Trace:
    """`trace: FILE`: one arrival per line, `SECONDS [MODEL]`; blank lines and # comments skipped."""
    value = doc.get("trace")
    if not isinstance(value, str) or not value:
        raise fail("trace", f"`arrival: trace` needs `trace: FILE` (one arrival time in seconds per line), got {value!r}")
    path = base / value
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail("trace", f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    times: list[float] = []
    models: list[str | None] = []
    for n, line in enumerate(lines, 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        try:
            t = float(parts[0])
        except ValueError:
            raise fail("trace", f"{path} line {n}: {parts[0]!r} is not a time in seconds") from None
        if not math.isfinite(t) or t < 0 or len(parts) > 2:
            raise fail("trace", f"{path} line {n}: expected `SECONDS [MODEL]` with SECONDS >= 0, got {line.strip()!r}")
        times.append(t)
        models.append(parts[1] if len(parts) == 2 else None)
    if not times:
        raise fail("trace", f"{path} has no arrival times")
    order = sorted(range(len(times)), key=times.__getitem__)
    t0 = times[order[0]]
    return Trace(path, tuple(times[i] - t0 for i in order), tuple(models[i] for i in order))


def _check_trace_models(trace: Trace, models: tuple[ModelLoad, ...]) -> None:
    known = {m.label for m in models} | {m.name for m in models}
    for name in trace.models:
        if name is not None and name not in known:
            raise fail("trace", f"{trace.path} names {name!r}, which is not in `models` ({', '.join(sorted(known))})")
