"""Checks of a request, shared by both codecs: the wire rules every tensor and parameter must
meet before any work is done on it (rank, dims, element count, buffer sizes, value ranges,
parameter kinds), and the decoded request against the model's declared inputs and outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import math

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, deserialize_bytes_tensor
from modelplex.dispatch.deadlines import timeout_s
from modelplex.serving.types import InferRequest

MAX_RANK = 32  # numpy's limit is 64; no served model has more than a handful of axes
MAX_ELEMENTS = 2**31  # most elements one tensor may declare (its non-zero dims' product too)
_BYTES_PREFIX = 4  # every BYTES element carries a 4-byte length prefix
_NAME_CHARS = 64  # names echoed in error messages are cut to this


def label(name: str) -> str:
    """A client-given name as error messages quote it (cut, so a huge name is not echoed)."""
    return repr(name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS] + "...")


def tensor_shape(name: str, dims: object) -> tuple[tuple[int, ...], int]:
    """The shape of input `name` as ints and its element count; InvalidArgumentError naming the
    input when the shape is not a list of non-negative ints, has more than MAX_RANK axes, or
    declares more than MAX_ELEMENTS elements (zero dims aside, so no product can overflow)."""
    where = f"input {label(name)}"
    if not isinstance(dims, (list, tuple)):
        raise InvalidArgumentError(f"{where}: 'shape' must be a list of non-negative integers")
    if len(dims) > MAX_RANK:
        raise InvalidArgumentError(f"{where}: shape has {len(dims)} dimensions, at most {MAX_RANK} are allowed")
    extent = 1
    for i, d in enumerate(dims):
        if not isinstance(d, int) or isinstance(d, bool):
            raise InvalidArgumentError(f"{where}: 'shape' must be a list of non-negative integers, got {d!r} at axis {i}")
        if d < 0:
            raise InvalidArgumentError(f"{where}: shape[{i}] is {d}; dimensions must be non-negative")
        extent *= max(d, 1)
        if extent > MAX_ELEMENTS:
            raise InvalidArgumentError(f"{where}: shape declares more than {MAX_ELEMENTS} elements")
    shape = tuple(int(d) for d in dims)
    return shape, math.prod(shape)


def fixed_array(name: str, dtype: DataType, shape: tuple[int, ...], count: int, buf: bytes | memoryview, what: str) -> np.ndarray:
    """A fixed-size tensor from its raw little-endian bytes, which must be exactly its size."""
    need = count * dtype.itemsize
    if len(buf) != need:
        raise InvalidArgumentError(
            f"input {label(name)}: {what} is {len(buf)} bytes, shape {list(shape)} of {dtype.value} needs {need}"
        )
    if dtype is DataType.BOOL and need and int(np.frombuffer(buf, np.uint8).max()) > 1:
        raise InvalidArgumentError(f"input {label(name)}: BOOL bytes must be 0 or 1")
    return np.frombuffer(buf, dtype=dtype.numpy).reshape(shape)


def bytes_array(name: str, shape: tuple[int, ...], count: int, buf: bytes | memoryview) -> np.ndarray:
    """A BYTES tensor from its length-prefixed encoding; the count is checked before parsing."""
    if count * _BYTES_PREFIX > len(buf):
        raise InvalidArgumentError(
            f"input {label(name)}: {len(buf)} bytes of BYTES data cannot hold the {count} elements of shape "
            f"{list(shape)} (each has a {_BYTES_PREFIX}-byte length prefix)"
        )
    try:
        return deserialize_bytes_tensor(buf, count).reshape(shape)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"input {label(name)}: {exc.message}") from None


def check_int_range(name: str, dtype: DataType, values: np.ndarray) -> None:
    """Integer values must fit the datatype (300 is no UINT8) before they are cast to it."""
    if not values.size:
        return
    info = np.iinfo(dtype.numpy)
    lo, hi = int(values.min()), int(values.max())
    if lo < info.min or hi > info.max:
        bad = lo if lo < info.min else hi
        raise InvalidArgumentError(
            f"input {label(name)}: value {bad} is out of range for {dtype.value} ({info.min}..{info.max})"
        )


def check_parameters(params: Mapping[str, object], where: str = "request") -> None:
    """Parameters are scalars (string, number, boolean); the ones the server reads have their kind."""
    for key, value in params.items():
        if value is None or not isinstance(value, (str, int, float, bool)):
            kind = "no value" if value is None else f"a {type(value).__name__}"
            raise InvalidArgumentError(f"{where} parameter {label(key)} must be a string, number or boolean, got {kind}")
    flag = params.get("binary_data_output")
    if flag is not None and not isinstance(flag, bool):
        raise InvalidArgumentError(f"{where} parameter 'binary_data_output' must be a boolean, got {flag!r}")
    timeout_s(params)


def check_count(name: str, shape: Sequence[int], count: int, given: int) -> None:
    if given != count:
        raise InvalidArgumentError(f"input {label(name)}: shape {list(shape)} needs {count} elements, data has {given}")


def _dims_match(declared: tuple[int, ...], given: tuple[int, ...]) -> bool:
    return len(declared) == len(given) and all(d < 0 or d == g for d, g in zip(declared, given))


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def validate_request(config: ModelConfig, request: InferRequest) -> int:
    """Raise InvalidArgumentError naming the problem; return the request's batch rows."""
    model = config.model.name
    seen: set[str] = set()
    rows: int | None = None
    max_batch = config.batching.max_batch_size
    for tensor in request.inputs:
        spec = config.input(tensor.name)
        if spec is None:
            expected = ", ".join(s.name for s in config.inputs)
            raise InvalidArgumentError(f"model {model} has no input named {tensor.name!r} (inputs: {expected})")
        if tensor.name in seen:
            raise InvalidArgumentError(f"input {tensor.name!r} is given more than once")
        seen.add(tensor.name)
        if tensor.datatype is not spec.datatype:
            raise InvalidArgumentError(
                f"input {tensor.name!r} of model {model} has datatype {spec.datatype.value}, got {tensor.datatype.value}"
            )
        shape = tensor.shape
        if max_batch > 0:
            if len(shape) != len(spec.shape) + 1 or not _dims_match(spec.shape, shape[1:]) or shape[0] < 1:
                raise InvalidArgumentError(
                    f"input {tensor.name!r} of model {model} has shape [-1]+{_fmt(spec.shape)} (batch first), got {_fmt(shape)}"
                )
            if shape[0] > max_batch:
                raise InvalidArgumentError(
                    f"input {tensor.name!r} has batch {shape[0]}, more than model {model}'s max_batch_size {max_batch}"
                )
            if rows is not None and shape[0] != rows:
                raise InvalidArgumentError(f"inputs of one request must share the batch size ({rows} vs {shape[0]})")
            rows = shape[0]
        elif not _dims_match(spec.shape, shape):
            raise InvalidArgumentError(f"input {tensor.name!r} of model {model} has shape {_fmt(spec.shape)}, got {_fmt(shape)}")
    missing = [s.name for s in config.inputs if s.name not in seen]
    if missing:
        raise InvalidArgumentError(f"model {model} needs input(s) {', '.join(missing)}")
    if request.outputs:
        names = {o.name for o in config.outputs}
        for out in request.outputs:
            if out.name not in names:
                raise InvalidArgumentError(
                    f"model {model} has no output named {out.name!r} (outputs: {', '.join(sorted(names))})"
                )
    return rows or 1
