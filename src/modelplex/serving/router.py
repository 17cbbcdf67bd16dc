"""Splitting one model's requests across the slices that serve it."""

from __future__ import annotations

from modelplex.serving.batching import Admission, QueuedRequest
from modelplex.serving.slice_runner import Pending, SliceRunner


class ModelRouter:
    """Routes a model's requests to its slices: by the plan's traffic shares (smooth weighted
    round robin) when they differ, else to the slice predicted to finish first; and deadline-aware:
    a slice that cannot meet the request's deadline passes it to the next one."""

    def __init__(self, model: str, entries: list[tuple[SliceRunner, float]]) -> None:
        self.model = model
        self.runners = [r for r, _ in entries]
        self.weights = [max(0.0, w) for _, w in entries]
        self._credit = [0.0] * len(entries)  # smooth weighted round-robin state
        self._weighted = len({round(w, 6) for w in self.weights}) > 1

    @property
    def ready(self) -> bool:
        return any(r.ready for r in self.runners)

    def route(self, queued: QueuedRequest[Pending], now: float) -> Admission:
        live = [i for i, r in enumerate(self.runners) if r.ready]
        if not live:
            live = list(range(len(self.runners)))  # all restarting: queue where the plan says
        by_finish = sorted(live, key=lambda i: self.runners[i].predicted_finish_s(self.model, queued.rows, now))
        if self._weighted:
            first = self._pick(live)
            order = [first] + [i for i in by_finish if i != first]
        else:
            order = by_finish
        first_rejection: Admission | None = None
        for i in order:
            admission = self.runners[i].submit(self.model, queued, now)
            if admission.admitted:
                return admission
            first_rejection = first_rejection or admission
        assert first_rejection is not None
        return first_rejection

    def _pick(self, live: list[int]) -> int:
        total = sum(self.weights[i] for i in live) or 1.0
        for i in live:
            self._credit[i] += self.weights[i]
        best = max(live, key=lambda i: self._credit[i])
        self._credit[best] -= total
        return best
