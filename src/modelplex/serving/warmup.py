"""Warmup of a new worker (Triton's model_warmup): each sample of a model's config runs `count`
times on the slice's worker before the slice is marked ready, so the first client request does
not pay for first-run allocations. A failing sample fails the start, as in Triton."""

from __future__ import annotations

import logging
import time

import numpy as np

from modelplex.core.errors import InvalidArgumentError, ModelplexError
from modelplex.core.model import ModelConfig, WarmupSample
from modelplex.core.tensors import DataType
from modelplex.runtime.executor import Arrays, Executor

log = logging.getLogger(__name__)


def sample_arrays(config: ModelConfig, sample: WarmupSample, seed: int = 0) -> Arrays:
    """The sample's inputs: zeros or seeded random data, with the batch axis when batched."""
    rng = np.random.default_rng(seed)
    arrays: Arrays = []
    for inp in sample.inputs:
        shape = ((sample.batch_size,) if config.batched else ()) + inp.dims
        if inp.datatype is DataType.BYTES:
            values = [str(rng.integers(0, 10**6)).encode() if inp.random else b"" for _ in range(int(np.prod(shape)))]
            array = np.array(values, dtype=object).reshape(shape)
        elif inp.datatype is DataType.BOOL:
            array = rng.random(shape) < 0.5 if inp.random else np.zeros(shape, dtype=bool)
        elif inp.random and inp.datatype.numpy.kind == "f":
            array = rng.standard_normal(shape).astype(inp.datatype.numpy)
        elif inp.random:
            array = rng.integers(0, 100, size=shape).astype(inp.datatype.numpy)
        else:
            array = np.zeros(shape, dtype=inp.datatype.numpy)
        arrays.append((inp.name, array))
    return arrays


async def run_warmup(executor: Executor, slice_id: str, config: ModelConfig) -> None:
    """Run every warmup sample of `config` on the slice's worker; log what ran and how long."""
    name = config.model.name
    for sample in config.warmup:
        arrays = sample_arrays(config, sample)
        t0 = time.monotonic()
        compute: list[float] = []
        for _ in range(sample.count):
            try:
                result = await executor.run(slice_id, name, arrays, None)
            except ModelplexError as exc:
                raise InvalidArgumentError(f"model {name}: warmup sample {sample.name!r} failed: {exc.message}") from None
            compute.append(result.compute_s)
        log.info("model %s on slice %s: warmup sample %r ran %d time(s) in %.1f ms (first %.2f ms, last %.2f ms compute)",
                 name, slice_id, sample.name, sample.count, (time.monotonic() - t0) * 1e3,
                 compute[0] * 1e3, compute[-1] * 1e3)
