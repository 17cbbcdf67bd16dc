"""Measuring interference: pairs of models at once on two 1-core slices of the host CPU.

Each model gets one worker pinned to core A and one pinned to core B (started once, reused by
every pair). A model's solo latency is its median compute time in a closed loop alone; a pair
runs both closed loops at the same time for the same duration, and each side's slowdown is its
paired median over its solo median on the same core.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelplex.core.devices import SliceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.profiling.inputs import Arrays, nbytes, synthesize
from modelplex.profiling.interference import Observation, solo_features
from modelplex.profiling.progress import Progress
from modelplex.profiling.runner import static_features
from modelplex.runtime.worker_handle import WorkerHandle


@dataclass(frozen=True)
class PairSettings:
    """How long and at which batches to run pairs."""

    batches: tuple[int, ...] = (1, 8)  # each model runs at min(batch, its max batch); one pass per batch
    duration_s: float = 1.5  # closed-loop time of each solo run and each pair run
    min_runs: int = 5  # each side runs at least this many batches per run
    cores: tuple[int, int] = (0, 1)  # the two cores (each a 1-core slice)


@dataclass
class _Loaded:
    config: ModelConfig  # the model
    workers: tuple[WorkerHandle, WorkerHandle]  # one per core
    weight_bytes: float  # model file size


async def closed_loop(handle: WorkerHandle, inputs: Arrays, duration_s: float, min_runs: int) -> list[float]:
    """Run the same batch back to back; compute seconds of each run."""
    await handle.run(inputs, None)  # warm-up (first run on this worker at this shape)
    samples: list[float] = []
    deadline = time.monotonic() + duration_s
    while len(samples) < min_runs or time.monotonic() < deadline:
        _, compute_s = await handle.run(inputs, None)
        samples.append(compute_s)
    return samples


def _batch(config: ModelConfig, batch: int) -> int:
    return min(batch, config.batching.max_batch_size) if config.batched else 1


async def measure_pairs(configs: Sequence[ModelConfig], settings: PairSettings,
                        progress: Progress | None = None) -> list[Observation]:
    """All unordered pairs (self-pairs included) of the models, at each batch setting."""
    if len(set(settings.cores)) != 2:
        raise InvalidArgumentError("interference needs two distinct cores")
    loaded: list[_Loaded] = []
    try:
        for config in configs:
            hs = tuple(
                WorkerHandle(f"pair:{config.model.name}@{c}", config.path, SliceSpec("cpu0", 1, (c,)), threads=1)
                for c in settings.cores
            )
            for h in hs:
                await h.start()
            loaded.append(_Loaded(config, (hs[0], hs[1]), static_features(config).get("weight_bytes", 0.0)))
        obs: list[Observation] = []
        group = itertools.count()
        for batch in settings.batches:
            obs.extend(await _one_batch_setting(loaded, batch, settings, group, progress))
        return obs
    finally:
        for m in loaded:
            for h in m.workers:
                await h.stop()


async def _one_batch_setting(loaded: list[_Loaded], batch: int, settings: PairSettings,
                             group: itertools.count[int], progress: Progress | None) -> list[Observation]:
    inputs = {m.config.model.name: synthesize(m.config, _batch(m.config, batch)) for m in loaded}
    solo_ms: dict[tuple[str, int], float] = {}
    feats: dict[str, dict[str, float]] = {}
    for m in loaded:
        name = m.config.model.name
        for side in (0, 1):
            samples = await closed_loop(m.workers[side], inputs[name], settings.duration_s, settings.min_runs)
            solo_ms[(name, side)] = float(np.median(samples)) * 1000
            if progress is not None:
                progress.advance(1, f"solo {name} batch={_batch(m.config, batch)}")
        outs, _ = await m.workers[0].run(inputs[name], None)
        io = nbytes(inputs[name]) + nbytes(outs)
        feats[name] = solo_features(m.weight_bytes, io, solo_ms[(name, 0)] / 1000)
    out: list[Observation] = []
    for a, b in itertools.combinations_with_replacement(loaded, 2):
        na, nb = a.config.model.name, b.config.model.name
        sa, sb = await asyncio.gather(
            closed_loop(a.workers[0], inputs[na], settings.duration_s, settings.min_runs),
            closed_loop(b.workers[1], inputs[nb], settings.duration_s, settings.min_runs),
        )
        g = next(group)
        ba, bb = _batch(a.config, batch), _batch(b.config, batch)
        out.append(Observation(g, na, nb, ba, bb, feats[na], feats[nb], solo_ms[(na, 0)], float(np.median(sa)) * 1000))
        out.append(Observation(g, nb, na, bb, ba, feats[nb], feats[na], solo_ms[(nb, 1)], float(np.median(sb)) * 1000))
        if progress is not None:
            progress.advance(1, f"pair {na}+{nb} batch={batch}")
    return out


def steps(n_models: int, settings: PairSettings) -> int:
    """Progress units of measure_pairs: solo runs plus pair runs per batch setting."""
    return len(settings.batches) * (2 * n_models + n_models * (n_models + 1) // 2)
