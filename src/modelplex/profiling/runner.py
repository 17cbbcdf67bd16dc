"""The profiling run: which (model, slice, batch) points to measure, resuming from the registry,
and storing each slice's points as soon as they are measured (an interrupted run loses little)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from modelplex.core.errors import DeviceError
from modelplex.core.model import ModelConfig
from modelplex.core.profile import Profile
from modelplex.profiling.backends import SliceBackend
from modelplex.profiling.measure import Warmup, measure_slice
from modelplex.profiling.progress import Progress
from modelplex.profiling.stats import StopRule
from modelplex.profiling.storage import ProfileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkItem:
    """One worker's worth of measurements: a model on one slice size, several batches."""

    config: ModelConfig  # the model (its highest version)
    size: int  # slice size in the backend's unit
    batches: tuple[int, ...]  # batch sizes still to measure, ascending


@dataclass(frozen=True)
class WorkPlan:
    """What a run will measure, and what it skips and why."""

    items: tuple[WorkItem, ...]  # to measure
    known: int  # points skipped because the registry has them (resume)
    too_big: int  # points skipped because the batch exceeds the model's max_batch_size

    @property
    def points(self) -> int:
        return sum(len(i.batches) for i in self.items)


def batches_for(config: ModelConfig, batches: Sequence[int]) -> list[int]:
    """The requested batches this model can run: <= max_batch_size; just 1 when it is unbatched."""
    if not config.batched:
        return [1]
    return sorted(b for b in set(batches) if b <= config.batching.max_batch_size)


def plan_work(configs: Sequence[ModelConfig], sizes: Sequence[int], batches: Sequence[int],
              store: ProfileStore, backend: SliceBackend, force: bool = False) -> WorkPlan:
    items: list[WorkItem] = []
    known_count = 0
    too_big = 0
    for config in configs:
        runnable = batches_for(config, batches)
        too_big += (len(set(batches)) - len(runnable)) * len(sizes) if config.batched else 0
        known = set() if force else store.known_points(config.model.name, backend.hardware, backend.device_kind)
        for size in sorted(set(sizes)):
            todo = tuple(b for b in runnable if (size, b) not in known)
            known_count += len(runnable) - len(todo)
            if todo:
                items.append(WorkItem(config, size, todo))
    return WorkPlan(tuple(items), known_count, too_big)


def static_features(config: ModelConfig) -> dict[str, float]:
    """Features known without running: the bytes of weights (the ONNX file holds them)."""
    try:
        return {"weight_bytes": float(os.path.getsize(config.path))}
    except OSError:
        return {}


async def run_plan(plan: WorkPlan, backend: SliceBackend, store: ProfileStore, rule: StopRule,
                   warmup: Warmup = Warmup(), progress: Progress | None = None) -> list[Profile]:
    """Measure every item, merging each slice's points into the registry as it finishes. A model
    whose worker cannot use the device (DeviceError: e.g. not really on the GPU) is skipped with
    one line saying why; any other failure stops the run."""
    skipped: set[str] = set()
    for item in plan.items:
        name = item.config.model.name
        if name in skipped:
            if progress is not None:
                progress.advance(len(item.batches), f"{name} skipped")
            continue

        def tick(point: object, name: str = name, size: int = item.size) -> None:
            if progress is not None:
                b = getattr(point, "batch", "?")
                progress.advance(1, f"{name} slice={size} batch={b}")

        try:
            result = await measure_slice(item.config, backend, item.size, item.batches, rule, warmup, tick)
        except DeviceError as exc:
            log.warning("skipping model %s on %s: %s", name, backend.hardware, exc.message)
            skipped.add(name)
            if progress is not None:
                progress.advance(len(item.batches), f"{name} skipped")
            continue
        largest = max(result.io_bytes)
        features = static_features(item.config)
        features["io_bytes_per_item"] = result.io_bytes[largest] / largest
        store.merge_in(
            Profile(
                model=name,
                device_kind=backend.device_kind,
                hardware=backend.hardware,
                points=result.points,
                memory_mb=result.memory_mb,
                load_s=result.load_s,
                features=features,
            )
        )
    names = sorted({item.config.model.name for item in plan.items})
    return [p for p in (store.get(n, backend.hardware, backend.device_kind) for n in names) if p]
