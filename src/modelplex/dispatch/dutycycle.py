"""Turn-taking of the models that time-share one slice (pure; `now` is passed in).

Models take turns round-robin in the order the plan lists them; a model with nothing to run is
skipped, so the slice never idles while any model has work (work-conserving). One turn runs one
batch. Under the planned load a full round fits in the plan's duty cycle, so every model waits
at most one cycle for its turn. A slice with several worker processes (a segment) runs up to
that many batches at once; turns are handed out in the same order. Driven by SliceScheduler:

    order = turns.candidates(now)        # models to ask, in turn order (empty while all run)
    ... ask each model's BatchQueue.next_batch(now) until one returns requests ...
    turns.started(model_index, now)
    turns.finished(now)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class DutyCycleScheduler:
    """Round-robin turns over the models of one slice."""

    models: Sequence[str]  # models sharing the slice, in plan order
    duty_cycle_ms: float = 0.0  # planned round length (for reporting; turns are work-conserving)
    slots: int = 1  # batches that may run at once (worker processes of the slice)
    _next: int = field(default=0, init=False)  # index whose turn comes first next time
    _running: int = field(default=0, init=False)  # batches running now
    _last: int = field(default=-1, init=False)  # model that took the slice last
    turns: list[int] = field(default_factory=list, init=False)  # batches run per model
    cycle_start_s: float = field(default=0.0, init=False)  # when the current round began

    def __post_init__(self) -> None:
        self.turns = [0] * len(self.models)

    @property
    def busy(self) -> bool:
        """Every slot runs a batch."""
        return self._running >= self.slots

    @property
    def running(self) -> int:
        return self._running

    def candidates(self, now: float) -> list[int]:
        """Model indices to offer a free slot to, in turn order; empty while every slot runs."""
        if self.busy:
            return []
        n = len(self.models)
        return [(self._next + k) % n for k in range(n)]

    def started(self, index: int, now: float) -> None:
        """Model `index` took a slot."""
        if index <= self._last:
            self.cycle_start_s = now  # wrapped around: a new round begins
        self._last = index
        self._running += 1
        self.turns[index] += 1
        self._next = (index + 1) % len(self.models)

    def finished(self, now: float) -> None:
        """A running batch is done; its slot is free."""
        self._running = max(0, self._running - 1)
