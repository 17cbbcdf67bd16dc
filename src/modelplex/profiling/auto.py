"""Profiling at `serve --policy` start: measure, with a quick preset, the points the registry lacks
for this host, so one command goes from a model folder to a planned server.

The quick preset measures every model (its highest version) on slices of 1, 2, 4, ... cores and
the whole host, at batches 1, 4 and 16 (those above the model's max_batch_size replaced by it),
timing each point for at most a third of a second after a short warm-up. Each slice's points are
stored in the registry as soon as they are measured: a killed start resumes where it stopped, and
later starts measure nothing. `modelplex profile` measures more points, more carefully.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from modelplex.core.model import ModelConfig
from modelplex.profiling.backends import CpuBackend, SliceBackend, gpu_backend, gpu_skips
from modelplex.profiling.hardware import detect_host
from modelplex.profiling.measure import Warmup
from modelplex.profiling.progress import Progress
from modelplex.profiling.runner import WorkItem, WorkPlan, plan_work, run_plan
from modelplex.profiling.stats import StopRule
from modelplex.profiling.storage import ProfileStore, check_writable
from modelplex.repository.store import Registry
from modelplex.runtime.gpu import GpuShares

QUICK_BATCHES = (1, 4, 16)  # batches of the quick preset (clipped to each model's max_batch_size)
QUICK_GPU_SIZES = (20, 50, 100)  # MPS shares (%) of the quick preset
QUICK_RULE = StopRule(min_samples=8, min_s=0.05, max_samples=500, rel_ci=0.05, budget_s=0.3)
QUICK_WARMUP = Warmup(runs=2, min_s=0.05)

log = logging.getLogger(__name__)


def quick_sizes(capacity: int) -> list[int]:
    """1, 2, 4, ... cores up to the host's, and the whole host (the planner interpolates between)."""
    sizes = {capacity}
    size = 1
    while size < capacity:
        sizes.add(size)
        size *= 2
    return sorted(sizes)


def quick_batches(config: ModelConfig) -> list[int]:
    """The preset's batches this model can run, its max_batch_size standing in for larger ones."""
    if not config.batched:
        return [1]
    top = config.batching.max_batch_size
    return sorted({min(b, top) for b in QUICK_BATCHES})


def latest_versions(configs: Sequence[ModelConfig]) -> list[ModelConfig]:
    latest: dict[str, ModelConfig] = {}
    for c in sorted(configs, key=lambda c: (c.model.name, c.model.version)):
        latest[c.model.name] = c
    return [latest[n] for n in sorted(latest)]


def _backend(kind: str, gpus: GpuShares | None) -> SliceBackend:
    host = detect_host()
    return gpu_backend(host, gpus) if kind != "cpu" else CpuBackend(host)


async def profile_missing(configs: Sequence[ModelConfig], state_dir: Path, kind: str = "cpu",
                          show_progress: bool = True, gpus: GpuShares | None = None) -> int:
    """Measure the quick preset's points that the registry under `state_dir` lacks for this host;
    returns how many points were measured (0 when every model already has them). On the GPU
    (`kind` gpu-mps, shares of `gpus`) models that cannot run there are skipped, one line
    each; the planner then says which profiles are missing."""
    backend = _backend(kind, gpus)
    if kind != "cpu":
        skips = gpu_skips(configs)
        for name, why in sorted(skips.items()):
            log.warning("not profiling model %s on the GPU: %s", name, why)
        configs = [c for c in configs if c.model.name not in skips]
    sizes = list(QUICK_GPU_SIZES) if kind != "cpu" else quick_sizes(backend.capacity)
    check_writable(state_dir)
    with Registry(state_dir) as registry:
        store = ProfileStore(registry)
        models = latest_versions(configs)
        plan = _plan(models, sizes, store, backend)
        if not plan.items:
            log.info("profiles of %d model(s) on %s found in the registry", len(models), backend.hardware)
            return 0
        todo = sorted({i.config.model.name for i in plan.items})
        log.info("profiling %s on %s before planning (quick preset: slices %s, batches <= %s; "
                 "%d point(s) to measure, %d already stored) ...", ", ".join(todo), backend.hardware,
                 ",".join(map(str, sizes)), max(QUICK_BATCHES), plan.points, plan.known)
        t0 = time.monotonic()
        progress = Progress(plan.points, "profile", enabled=show_progress, every_s=2.0)
        await run_plan(plan, backend, store, QUICK_RULE, QUICK_WARMUP, progress)
        progress.close(f"{plan.points} points")
        log.info("profiled %d point(s) in %.1f s; stored in %s (later starts reuse them)",
                 plan.points, time.monotonic() - t0, state_dir)
        return plan.points


def _plan(models: Sequence[ModelConfig], sizes: Sequence[int], store: ProfileStore,
          backend: SliceBackend) -> WorkPlan:
    """One work plan over models whose batch menus differ (each gets its own clipped batches)."""
    items: list[WorkItem] = []
    known, too_big = 0, 0
    for config in models:
        part = plan_work([config], sizes, quick_batches(config), store, backend)
        items.extend(part.items)
        known += part.known
        too_big += part.too_big
    return WorkPlan(tuple(items), known, too_big)

