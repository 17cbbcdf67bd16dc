"""From the running plan to a new one (pure): which slices start (and load which models), which
are kept as they run, how each model's traffic is routed, which slices drain and stop.

The live server executes the actions -- start and load the new slices beside the old ones,
switch routing when all are ready, drain the old slices, stop them -- and the simulator applies
the same actions with worker start and load times taken from measured profiles."""

from __future__ import annotations

from dataclasses import dataclass

from modelplex.core.devices import SliceSpec
from modelplex.core.plan import Plan, SlicePlan


@dataclass(frozen=True)
class StartSlice:
    """Start a worker on a new slice of the new plan."""

    slice_id: str  # the slice's id in the new plan
    slice: SliceSpec  # the device share it runs on
    duty_cycle_ms: float  # turn round of the models sharing it
    processes: int = 1  # worker processes taking batches at once (a segment when > 1)


@dataclass(frozen=True)
class LoadModel:
    """Load a model on a starting slice, to run at batches of at most `batch`."""

    slice_id: str  # id in the new plan
    model: str  # model name
    batch: int  # planned batch size


@dataclass(frozen=True)
class Route:
    """The model's traffic split once the switch happens: (new-plan slice id, share) pairs."""

    model: str  # model name
    targets: tuple[tuple[str, float], ...]  # slices and their traffic shares


@dataclass(frozen=True)
class KeepSlice:
    """A running slice that serves the new plan as it is (same share, models and batches)."""

    slice_id: str  # its id in the new plan
    running_id: str  # its id in the running plan


@dataclass(frozen=True)
class DrainSlice:
    """A running slice the new plan does not keep: it gets no new requests, serves its queue."""

    running_id: str  # id in the running plan


@dataclass(frozen=True)
class StopSlice:
    """Stop the worker of a drained slice."""

    running_id: str  # id in the running plan


Action = StartSlice | LoadModel | Route | KeepSlice | DrainSlice | StopSlice


@dataclass(frozen=True)
class PlanDiff:
    """The actions that turn the running plan into the new one, by phase."""

    start: tuple[StartSlice, ...]  # phase 1: start these workers, beside the running ones
    load: tuple[LoadModel, ...]  # phase 1: ... loading these models
    keep: tuple[KeepSlice, ...]  # running slices that carry over unchanged
    route: tuple[Route, ...]  # phase 2, once phase 1 is ready: the switch, all models at once
    drain: tuple[DrainSlice, ...]  # phase 3: old slices serve their queues
    stop: tuple[StopSlice, ...]  # phase 4: ... and stop

    @property
    def actions(self) -> tuple[Action, ...]:
        return (*self.start, *self.load, *self.keep, *self.route, *self.drain, *self.stop)

    @property
    def changes_workers(self) -> bool:
        """The new plan starts or stops at least one worker."""
        return bool(self.start or self.drain)

    def models_on(self, slice_id: str) -> list[LoadModel]:
        """The models a starting slice loads, in plan (turn) order."""
        return [a for a in self.load if a.slice_id == slice_id]


def signature(s: SlicePlan) -> tuple[object, ...]:
    """What makes two slices interchangeable: the same share (and MIG position), processes,
    models (in order) and batches."""
    share = (s.slice.device_id, s.slice.size, s.slice.cpus, s.slice.mig_start)
    return (*share, s.processes, tuple((a.model, a.batch) for a in s.assignments))


def diff(running: Plan | None, new: Plan) -> PlanDiff:
    """Actions from `running` (None: nothing runs yet) to `new`. A slice identical to a running
    one (same share, models, batches) is kept; every other slice of `new` starts fresh."""
    free: dict[tuple[object, ...], list[str]] = {}
    for s in running.slices if running is not None else ():
        free.setdefault(signature(s), []).append(s.slice_id)
    start: list[StartSlice] = []
    load: list[LoadModel] = []
    keep: list[KeepSlice] = []
    for s in new.slices:
        if not s.assignments:
            continue
        matches = free.get(signature(s))
        if matches:
            keep.append(KeepSlice(s.slice_id, matches.pop(0)))
            continue
        start.append(StartSlice(s.slice_id, s.slice, s.duty_cycle_ms, s.processes))
        load.extend(LoadModel(s.slice_id, a.model, a.batch) for a in s.assignments)
    targets: dict[str, list[tuple[str, float]]] = {}
    for s in new.slices:
        for a in s.assignments:
            targets.setdefault(a.model, []).append((s.slice_id, a.share))
    route = tuple(Route(m, tuple(t)) for m, t in targets.items())
    leftover = sorted(i for ids in free.values() for i in ids)
    return PlanDiff(
        tuple(start), tuple(load), tuple(keep), route,
        tuple(DrainSlice(i) for i in leftover), tuple(StopSlice(i) for i in leftover),
    )
