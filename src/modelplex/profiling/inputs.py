"""Synthetic inputs for a model, built from the input specs of its configuration.

Profiling needs inputs of the right shape and type, not meaningful ones. Choices:
- a dynamic (-1) non-batch dimension gets DEFAULT_DYNAMIC_DIM (16: a short sentence of tokens,
  a small image side), since the latency of such a model depends on the value chosen;
- integer inputs hold values in [0, INT_RANGE) so they are valid token ids / indices for any
  vocabulary or table of at least that size;
- floats are standard normal, booleans fair coin flips, BYTES short ASCII strings.
"""

from __future__ import annotations

import numpy as np

from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, TensorSpec

DEFAULT_DYNAMIC_DIM = 16  # value of a -1 dimension other than the batch axis (e.g. sequence length)
INT_RANGE = 100  # integer inputs are drawn from [0, INT_RANGE): valid ids for small vocabularies
BYTES_LEN = 8  # length of each synthetic BYTES element

Arrays = list[tuple[str, np.ndarray]]


def input_shape(spec: TensorSpec, batch: int, batched: bool) -> tuple[int, ...]:
    """Concrete shape of one input: the batch axis in front when batched, -1 dims filled in."""
    dims = [DEFAULT_DYNAMIC_DIM if d < 0 else d for d in spec.shape]
    if batched:
        return (batch, *dims)
    if spec.shape and spec.shape[0] < 0:
        dims[0] = 1  # an unbatched model's leading dynamic dim is most likely a batch of one
    return tuple(dims)


def synthesize(config: ModelConfig, batch: int, seed: int = 0) -> Arrays:
    """One batch of random inputs for the model (batch must be 1 for an unbatched model)."""
    rng = np.random.default_rng(seed)
    out: Arrays = []
    for spec in config.inputs:
        shape = input_shape(spec, batch, config.batched)
        out.append((spec.name, random_array(rng, spec.datatype, shape)))
    return out


def random_array(rng: np.random.Generator, dtype: DataType, shape: tuple[int, ...]) -> np.ndarray:
    if dtype is DataType.BYTES:
        arr = np.empty(shape, dtype=object)
        arr.reshape(-1)[:] = [b"x" * BYTES_LEN] * int(np.prod(shape, dtype=np.int64))
        return arr
    if dtype is DataType.BOOL:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    np_type = dtype.numpy
    if np_type.kind in ("i", "u"):
        return rng.integers(0, INT_RANGE, size=shape).astype(np_type)
    return rng.standard_normal(shape).astype(np_type)


def nbytes(arrays: Arrays) -> int:
    """Bytes of the arrays' data (BYTES elements counted by their length)."""
    total = 0
    for _, arr in arrays:
        if arr.dtype == object:
            total += sum(len(x) for x in arr.reshape(-1))
        else:
            total += int(arr.nbytes)
    return total
