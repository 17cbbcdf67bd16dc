"""Splitting one model's requests across the slices that serve it (pure)."""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Generic, NamedTuple, TypeVar

from modelplex.dispatch.batching import ADMITTED, Admission, QueuedRequest
from modelplex.dispatch.scheduler import SliceScheduler

P = TypeVar("P")


class Routed(NamedTuple, Generic[P]):
    """Where a request went: the slice that admitted it, or the first refusal."""

    admission: Admission  # admitted, or why not
    slice: SliceScheduler[P] | None  # the slice that queued it (None when refused)


class Router(Generic[P]):
    """Routes a model's requests to its slices: by the plan's traffic shares (smooth weighted
    round robin, deterministic) when they differ, else to the slice predicted to finish first;
    deadline-aware: a slice that cannot meet the request's deadline passes it to the next one.
    Slices that are not accepting (stopping, worker down) are tried last. When every slice
    predicts the deadline missed, the first choice may admit it as a probe (BatchQueue._probe)."""

    def __init__(self, model: str, entries: Sequence[tuple[SliceScheduler[P], float]]) -> None:
        if not entries:
            raise ValueError(f"model {model} has no slice to route to")
        self.model = model  # the model routed
        self.slices = [s for s, _ in entries]  # its slices
        self.weights = [max(0.0, w) for _, w in entries]  # plan traffic shares
        self._credit = [0.0] * len(entries)  # smooth weighted round-robin state
        self._weighted = len({round(w, 6) for w in self.weights}) > 1
        self._all = list(range(len(entries)))  # every slice, when none is accepting

    def route(self, request: QueuedRequest[P], now: float) -> Routed[P]:
        if len(self.slices) == 1:
            only = self.slices[0]
            admission = only.submit(self.model, request, now)
            if not admission.admitted and admission.deadline:
                admission = only.submit(self.model, request, now, probe=True) if only.accepting else admission
            return Routed(admission, only if admission.admitted else None)
        live = [i for i, s in enumerate(self.slices) if s.accepting] or self._all
        rows = request.rows
        first = self._pick(live) if self._weighted else min(live, key=lambda i: self._finish(i, rows, now))
        admission = self.slices[first].submit(self.model, request, now)
        if admission.admitted:
            return Routed(admission, self.slices[first])
        # the first choice cannot meet the deadline: the others, soonest finish first
        for i in sorted((i for i in live if i != first), key=lambda i: self._finish(i, rows, now)):
            other = self.slices[i].submit(self.model, request, now)
            if other.admitted:
                return Routed(other, self.slices[i])
        if admission.deadline and self.slices[first].submit(self.model, request, now, probe=True).admitted:
            return Routed(ADMITTED, self.slices[first])  # every slice said late: re-measure one
        return Routed(admission, None)

    def refuses_busy(self, rows: int, deadline_s: float, now: float) -> bool:
        """Every slice would refuse a request of `rows` with this deadline for the work queued
        ahead of it (asked before decoding a request: a refusal that costs little)."""
        return all(s.refuses_busy(self.model, rows, deadline_s, now) for s in self.slices)

    def _finish(self, i: int, rows: int, now: float) -> float:
        return self.slices[i].predicted_finish_s(self.model, rows, now)

    def _pick(self, live: list[int]) -> int:
        """Smooth weighted round robin over `live` (one pass: credit, total, best)."""
        credit, weights = self._credit, self.weights
        total, best, best_credit = 0.0, live[0], -math.inf
        for i in live:
            c = credit[i] + weights[i]
            credit[i] = c
            total += weights[i]
            if c > best_credit:
                best, best_credit = i, c
        credit[best] -= total or 1.0
        return best
