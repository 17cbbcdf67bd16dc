"""Measuring interference: pairs of models at once on two 1-core slices of the host CPU (or, with
--gpus, two halves of a GPU shared with MPS, each side driven from its own core).

Each side is a profiling.loadgen process pinned to its core, running the model back to back
(no per-run IPC, see loadgen's docstring). For every pair (self-pairs included) at a batch
setting: A alone on core A, B alone on core B, then both at once for the same interval; each
side's slowdown is its paired median over its solo median measured just before (on a host
shared with other work the solo baseline drifts, so it is re-measured per pair).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelplex.core.errors import InvalidArgumentError, UnavailableError
from modelplex.core.model import ModelConfig
from modelplex.profiling.backends import PairSide
from modelplex.profiling.inputs import input_shape
from modelplex.profiling.interference import Observation, solo_features
from modelplex.profiling.progress import Progress
from modelplex.profiling.runner import static_features


@dataclass(frozen=True)
class PairSettings:
    """How long and at which batches to run pairs."""

    batches: tuple[int, ...] = (1, 8)  # each model runs at min(batch, its max batch); one pass per batch
    duration_s: float = 1.0  # closed-loop time of each solo run and each pair run
    min_runs: int = 5  # each side runs at least this many batches per run
    cores: tuple[int, int] = (0, 1)  # the two cores (each a 1-core slice), when `sides` is not given
    sides: tuple[PairSide, PairSide] | None = None  # where each side runs (a backend's pair_sides)

    def both(self) -> tuple[PairSide, PairSide]:
        if self.sides is not None:
            return self.sides
        return PairSide(self.cores[0], "cpu"), PairSide(self.cores[1], "cpu")


class LoadProcess:
    """One loadgen process: a model at one batch, pinned to one core (and on a GPU share when
    the side says so)."""

    def __init__(self, config: ModelConfig, batch: int, side: PairSide) -> None:
        self.name = config.model.name  # model name
        self.batch = batch  # batch it runs
        specs = [[s.name, s.datatype.value, list(input_shape(s, batch, config.batched))] for s in config.inputs]
        env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1", **side.env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelplex.profiling.loadgen", "--model", config.path, "--cpu", str(side.cpu),
             "--provider", side.provider, "--inputs", json.dumps(specs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.io_bytes = 0  # inputs + outputs of one batch, known once ready

    def wait_ready(self) -> None:
        line = self._readline()
        if not line.startswith("ready"):
            raise UnavailableError(f"load process for {self.name} failed to start: {line.strip()!r}")
        self.io_bytes = int(line.split()[1])

    def go(self, start_s: float, end_s: float, min_runs: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {start_s} {end_s} {min_runs}\n")
        self.proc.stdin.flush()

    def result_ms(self) -> float:
        """Median latency of the run started by go()."""
        samples = json.loads(self._readline())["samples_s"]
        return float(np.median(samples)) * 1000

    def _readline(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise UnavailableError(f"load process for {self.name} exited (code {self.proc.wait()})")
        return line

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_together(procs: Sequence[LoadProcess], duration_s: float, min_runs: int) -> list[float]:
    start = time.monotonic() + 0.02  # both sides start at the same instant
    for p in procs:
        p.go(start, start + duration_s, min_runs)
    return [p.result_ms() for p in procs]


def _batch(config: ModelConfig, batch: int) -> int:
    return min(batch, config.batching.max_batch_size) if config.batched else 1


def measure_pairs(configs: Sequence[ModelConfig], settings: PairSettings,
                  progress: Progress | None = None) -> list[Observation]:
    """All unordered pairs (self-pairs included) of the models, at each batch setting."""
    sides = settings.both()
    if sides[0].provider == "cpu" and sides[0].cpu == sides[1].cpu:
        raise InvalidArgumentError("interference needs two distinct cores")
    obs: list[Observation] = []
    group = itertools.count()
    for batch in settings.batches:
        procs: dict[tuple[str, int], LoadProcess] = {}
        try:
            for c in configs:
                for k, side in enumerate(sides):
                    procs[(c.model.name, k)] = LoadProcess(c, _batch(c, batch), side)
            for p in procs.values():
                p.wait_ready()
            obs.extend(_pairs_at(configs, procs, settings, group, progress))
        finally:
            for p in procs.values():
                p.close()
    return obs


def _pairs_at(configs: Sequence[ModelConfig], procs: dict[tuple[str, int], LoadProcess], settings: PairSettings,
              group: itertools.count[int], progress: Progress | None) -> list[Observation]:
    weights = {c.model.name: static_features(c).get("weight_bytes", 0.0) for c in configs}
    raw: list[tuple[int, str, str, float, float, float, float]] = []
    solos: dict[str, list[float]] = {c.model.name: [] for c in configs}
    for a, b in itertools.combinations_with_replacement([c.model.name for c in configs], 2):
        pa, pb = procs[(a, 0)], procs[(b, 1)]
        [solo_a] = run_together([pa], settings.duration_s, settings.min_runs)
        [solo_b] = run_together([pb], settings.duration_s, settings.min_runs)
        paired_a, paired_b = run_together([pa, pb], settings.duration_s, settings.min_runs)
        solos[a].append(solo_a)
        solos[b].append(solo_b)
        raw.append((next(group), a, b, solo_a, solo_b, paired_a, paired_b))
        if progress is not None:
            progress.advance(1, f"pair {a}+{b} batch={pa.batch}/{pb.batch}")
    # features from the median of each model's solo runs, so one noisy run does not move them
    feats = {
        name: solo_features(weights[name], procs[(name, 0)].io_bytes, float(np.median(ms)) / 1000)
        for name, ms in solos.items() if ms
    }
    out: list[Observation] = []
    for g, a, b, solo_a, solo_b, paired_a, paired_b in raw:
        ba, bb = procs[(a, 0)].batch, procs[(b, 1)].batch
        out.append(Observation(g, a, b, ba, bb, feats[a], feats[b], solo_a, paired_a))
        out.append(Observation(g, b, a, bb, ba, feats[b], feats[a], solo_b, paired_b))
    return out


def steps(n_models: int, settings: PairSettings) -> int:
    """Progress units of measure_pairs: pair runs over all batch settings."""
    return len(settings.batches) * (n_models * (n_models + 1) // 2)
