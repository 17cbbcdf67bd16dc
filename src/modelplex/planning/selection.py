"""Variant selection for the three query forms (pure: no I/O, no clock).

Query forms (INFaaS):
  (a) a named variant (`cnn:int8-static`): that variant, whatever its load;
  (b) a model name + latency target: the cheapest variant of the model whose predicted latency
      meets the target (and the accuracy floor, when the query has one);
  (c) a task + latency target + minimum accuracy: among the task's variants that meet the floor,
      the cheapest whose predicted latency meets the target.

Predicted latency of one request on a candidate:
  loaded:   wait_ms + latency(slice, batch), with wait_ms from its current load (`predicted_wait_ms`)
  unloaded: load_s * 1000 + latency(slice, batch)   (the request waits for the worker to load)
Cost, in slice-unit milliseconds per request: slice_size x unit_cost x latency(slice, batch) / batch,
i.e. the share of a slice one request occupies; unit_cost converts a device kind's slice units
(1 CPU core, 1 % of a GPU) into a common currency and is 1 unless the caller says otherwise.

Ranking among the candidates that qualify: loaded before unloaded (no load, no cold start), then
lower cost, then lower predicted latency, then name (deterministic). A candidate whose accuracy
is unknown (None) never meets an accuracy floor. A loaded candidate at or above utilisation 1 is
overloaded: its predicted wait is infinite, so it never meets a latency target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelplex.core.errors import InvalidArgumentError, NotFoundError
from modelplex.core.profile import Profile


class SelectionError(InvalidArgumentError):
    """No variant satisfies the query; `reason` says which constraint cannot be met."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "accuracy": no variant meets the floor; "latency": some do, none is fast enough


@dataclass(frozen=True)
class Candidate:
    """One variant as selection sees it: measured facts plus its current deployment state."""

    variant: str  # variant name, e.g. "cnn:int8-static"
    model: str  # model it is a form of
    task: str | None  # task the model serves
    accuracy: float | None  # measured accuracy (None = unknown)
    profile: Profile  # latency per (slice size, batch)
    slice_size: int  # slice it runs on (loaded) or would be loaded on
    batch: int = 1  # batch size its slice runs it at
    loaded: bool = False  # a worker holds it now
    utilisation: float = 0.0  # busy fraction of its slice (0..1); >= 1 = overloaded
    queued: int = 0  # requests already waiting for it
    load_s: float = 0.0  # seconds to start a worker and load it (counted when not loaded)
    unit_cost: float = 1.0  # cost of one slice unit of its device kind per millisecond

    def latency_ms(self) -> float:
        """Latency of one batch on its slice, from the profile (batch 1 unless it batches)."""
        return self.profile.latency_ms(self.slice_size, self.batch)

    def cost_per_request(self) -> float:
        return cost_per_request(self.profile, self.slice_size, self.batch, self.unit_cost)

    def predicted_latency_ms(self) -> float:
        service = self.latency_ms()
        if not self.loaded:
            return self.load_s * 1000.0 + service
        return predicted_wait_ms(service, self.batch, self.utilisation, self.queued) + service


@dataclass(frozen=True)
class Query:
    """What the client asked for; which fields are set decides the form."""

    variant: str | None = None  # form (a): an explicit variant
    model: str | None = None  # form (b): a model, the system picks its variant
    task: str | None = None  # form (c): model-less, by task
    latency_ms: float | None = None  # latency target of the request (None = any)
    min_accuracy: float | None = None  # accuracy floor (None = any)


@dataclass(frozen=True)
class Selection:
    """The variant chosen and why."""

    candidate: Candidate  # the chosen variant and its state
    predicted_latency_ms: float  # predicted latency of the request on it
    cost: float  # slice-unit milliseconds per request
    reason: str  # one line, for logs and the response


def cost_per_request(profile: Profile, slice_size: int, batch: int, unit_cost: float = 1.0) -> float:
    """Slice capacity one request uses: slice units x milliseconds of the batch / batch."""
    return slice_size * unit_cost * profile.latency_ms(slice_size, batch) / max(batch, 1)


def predicted_wait_ms(service_ms: float, batch: int, utilisation: float, queued: int) -> float:
    """Wait before a new request's batch starts: the batches already queued ahead of it, plus the
    M/D/1 mean residual wait rho / (2 (1 - rho)) x service; infinite when overloaded (rho >= 1)."""
    if utilisation >= 1.0:
        return math.inf
    rho = max(utilisation, 0.0)
    ahead = math.ceil(max(queued, 0) / max(batch, 1))
    return ahead * service_ms + rho / (2.0 * (1.0 - rho)) * service_ms


def select(query: Query, candidates: Sequence[Candidate]) -> Selection:
    """Pick a variant for the query (see the module doc). Raises NotFoundError for an unknown
    variant, model or task, SelectionError when no variant satisfies the constraints, and
    InvalidArgumentError for a malformed query."""
    forms = [f for f in (query.variant, query.model, query.task) if f is not None]
    if len(forms) != 1:
        raise InvalidArgumentError("a query names exactly one of: a variant, a model, a task")
    if query.latency_ms is not None and not query.latency_ms > 0:
        raise InvalidArgumentError(f"latency target must be > 0 ms, got {query.latency_ms}")
    if query.min_accuracy is not None and not 0.0 <= query.min_accuracy <= 1.0:
        raise InvalidArgumentError(f"minimum accuracy must be in [0, 1], got {query.min_accuracy}")

    if query.variant is not None:
        for c in candidates:
            if c.variant == query.variant:
                return Selection(c, c.predicted_latency_ms(), c.cost_per_request(), "named variant")
        raise NotFoundError(f"variant {query.variant!r} is not available")

    if query.model is not None:
        pool = [c for c in candidates if c.model == query.model]
        scope = f"model {query.model!r}"
    else:
        pool = [c for c in candidates if c.task == query.task]
        scope = f"task {query.task!r}"
    if not pool:
        raise NotFoundError(f"{scope} has no available variants")

    floor = query.min_accuracy
    accurate = [c for c in pool if floor is None or (c.accuracy is not None and c.accuracy >= floor)]
    if not accurate:
        best = max(pool, key=lambda c: (c.accuracy if c.accuracy is not None else -1.0, c.variant))
        raise SelectionError(
            f"{scope}: accuracy {floor:g} is unreachable: the most accurate variant is "
            f"{best.variant} ({_acc(best.accuracy)})",
            "accuracy",
        )
    target = query.latency_ms
    fast = [c for c in accurate if target is None or c.predicted_latency_ms() <= target]
    if not fast:
        quickest = min(accurate, key=lambda c: (c.predicted_latency_ms(), c.variant))
        floor_text = f" with accuracy >= {floor:g}" if floor is not None else ""
        raise SelectionError(
            f"{scope}: latency {target:g} ms is unreachable: the fastest variant{floor_text} is "
            f"{quickest.variant} at {_ms(quickest.predicted_latency_ms())} predicted",
            "latency",
        )
    chosen = min(fast, key=lambda c: (not c.loaded, c.cost_per_request(), c.predicted_latency_ms(), c.variant))
    latency = chosen.predicted_latency_ms()
    why = (
        f"{'loaded' if chosen.loaded else 'not loaded'}, cheapest of {len(fast)} meeting "
        f"{'latency ' + format(target, 'g') + ' ms' if target is not None else 'no latency target'}"
        f"{' and accuracy ' + format(floor, 'g') if floor is not None else ''}: "
        f"{chosen.cost_per_request():.3g} unit-ms/request, {_ms(latency)} predicted"
    )
    return Selection(chosen, latency, chosen.cost_per_request(), why)


def _acc(accuracy: float | None) -> str:
    return "unknown" if accuracy is None else f"{accuracy:.4g}"


def _ms(value: float) -> str:
    return "overloaded" if math.isinf(value) else f"{value:.3g} ms"
