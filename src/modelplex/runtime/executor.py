"""What runs slice workers, behind one small interface: local processes today, a Ray cluster or
a GPU node agent later. The serving runtime decides what to run (the SliceScheduler) and calls
an Executor to run it; the executor reports a worker that exits through the callback given at
start."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from modelplex.core.devices import SliceSpec
from modelplex.core.model import ModelConfig

Arrays = list[tuple[str, np.ndarray]]
ExitCallback = Callable[[str, "int | None"], None]  # (slice id, exit code) of a worker that died


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reported once its models were loaded."""

    pid: int | None  # process id (None: no process, e.g. the fake executor)
    load_s: float  # seconds to start and load
    rss_mb: float  # resident memory after loading


@dataclass(frozen=True)
class BatchResult:
    """The outputs of one batch and the compute time measured where it ran."""

    outputs: Arrays  # output name -> array, batch rows first
    compute_s: float  # seconds of inference inside the worker


@dataclass(frozen=True)
class WorkerStatus:
    """A worker as `modelplex status` shows it."""

    pid: int | None  # process id (the first, when the slice runs several)
    alive: bool  # running and answering
    rss_mb: float | None  # resident memory now, all its processes (None: unknown)
    pids: tuple[int, ...] = ()  # every worker process of the slice


class Executor(Protocol):
    """Starts, feeds and stops the worker of each slice."""

    async def start(
        self, slice_id: str, spec: SliceSpec, models: Mapping[str, ModelConfig], on_exit: ExitCallback, processes: int = 1,
        poll_s: float = 0.0,
    ) -> WorkerInfo:
        """Start the slice's worker processes (`processes` of them, each taking batches
        concurrently) holding `models`; raises a ModelplexError when it cannot. `poll_s` > 0: the
        slice's cores are its worker's own, which may poll for its next batch that long after
        each one instead of sleeping (an executor without such workers ignores it)."""
        ...

    async def load(self, slice_id: str, model: ModelConfig) -> None:
        """Load one more model into a running worker."""
        ...

    async def unload(self, slice_id: str, model: str) -> None:
        """Drop a model from a running worker."""
        ...

    async def run(self, slice_id: str, model: str, inputs: Arrays, outputs: Sequence[str] | None) -> BatchResult:
        """Run one batch of `model` on the slice's worker."""
        ...

    async def stop(self, slice_id: str, force: bool = False) -> None:
        """Stop the slice's worker (no error if it is already gone); `force` kills it at once (a
        stalled worker). Batches it still runs fail with WorkerLostError."""
        ...

    def alive(self, slice_id: str) -> bool:
        """The slice's worker is running (cheap: asked on every dispatch)."""
        ...

    def status(self, slice_id: str) -> WorkerStatus:
        ...
