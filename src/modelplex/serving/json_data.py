"""A KServe v2 JSON `data` array -> a numpy tensor, refusing whatever does not fit the datatype:
strings or booleans for numbers, numbers out of the datatype's range, floats for integers,
nested lists of another shape. Only the HTTP codec reads JSON tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.tensors import DataType
from modelplex.serving.validate import check_count, check_int_range, label

_INT_KINDS = "iu"
_NUMBER_KINDS = "iuf"
_WIDE_INTS = (DataType.INT64, DataType.UINT64)
_FLOAT_MAX: dict[DataType, float] = {d: float(np.finfo(d.numpy).max) for d in DataType if d is not DataType.BYTES and d.numpy.kind == "f"}


@dataclass(frozen=True)
class JsonData:
    """What the request's JSON header tells the `data` decoder."""

    budget: int  # bytes of JSON: no `data` holds more elements than that
    may_hold_bools: bool  # the text has a true or false somewhere (else no scan for them)
    plain_numbers: bool = False  # the text shows `data` holds numbers only: no booleans, strings, nulls


def json_array(data: Any, dtype: DataType, shape: tuple[int, ...], count: int, name: str, json: JsonData) -> np.ndarray:
    """`data` (flat, or nested lists of exactly `shape`) as an array of `shape` and `dtype`."""
    where = f"input {label(name)}"
    if not isinstance(data, (list, np.ndarray)):
        raise InvalidArgumentError(f"{where}: 'data' must be a list")
    if count > json.budget:
        raise InvalidArgumentError(f"{where}: shape {list(shape)} needs {count} elements, more than a {json.budget}-byte JSON body holds")
    if isinstance(data, np.ndarray):  # numbers already read and flattened (serving.json_fast)
        check_count(name, shape, count, data.size)
        return _numbers(data, dtype, name, False).reshape(shape)
    fast = _plain_floats(data, dtype, count, json)
    if fast is not None:
        return _numbers(fast, dtype, name, False).reshape(shape)
    try:
        arr = np.asarray(data, dtype=object if dtype is DataType.BYTES else None)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise InvalidArgumentError(f"{where}: 'data' is not a list of numbers of shape {list(shape)} (ragged nested lists?)") from None
    if arr.shape != shape and arr.shape != (count,):
        if arr.ndim == 1:
            check_count(name, shape, count, arr.size)
        raise InvalidArgumentError(
            f"{where}: 'data' has shape {list(arr.shape)}, the input's shape is {list(shape)} (send nested lists of that shape, or a flat list)"
        )
    if dtype is DataType.BYTES:
        return _bytes(arr, where).reshape(shape)
    if arr.size == 0:
        return np.empty(shape, dtype=dtype.numpy)
    if arr.dtype.kind in "fO" and dtype in _WIDE_INTS:
        arr = _wide_ints(arr if arr.dtype.kind == "O" else np.asarray(data, dtype=object), dtype, name)
    return _numbers(arr, dtype, name, json.may_hold_bools and _has_bool(data)).reshape(shape)


def _plain_floats(data: list[Any], dtype: DataType, count: int, json: JsonData) -> np.ndarray | None:
    """A flat list of numbers for a float input, read in one C loop (a third of numpy's generic
    conversion from a list); None when this path does not apply or the list is not that (the
    generic path then decodes it, or says what is wrong)."""
    if not json.plain_numbers or dtype.numpy.kind != "f" or not count or len(data) != count or type(data[0]) is list:
        return None
    try:
        arr = np.fromiter(data, np.float64, count)
    except (ValueError, TypeError, OverflowError):
        return None  # nested lists further in, or an integer beyond float range
    return arr


def _wide_ints(arr: np.ndarray, dtype: DataType, name: str) -> np.ndarray:
    """64-bit integers numpy cannot type by itself ([0, 2**64 - 1] reads as floats): each value
    an int, in range."""
    flat = arr.reshape(-1).tolist()
    odd = [v for v in flat if type(v) is not int][:1]
    if odd:
        kind = "numbers, not booleans" if isinstance(odd[0], bool) else f"integers (got {odd[0]!r:.40})"
        raise InvalidArgumentError(f"input {label(name)}: {dtype.value} data must be {kind}")
    check_int_range(name, dtype, np.asarray([min(flat), max(flat)], dtype=object))
    return np.asarray(flat, dtype=dtype.numpy).reshape(arr.shape)


def _bytes(arr: np.ndarray, where: str) -> np.ndarray:
    items = [s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s for s in arr.reshape(-1)]
    if any(not isinstance(s, bytes) for s in items):
        raise InvalidArgumentError(f"{where}: BYTES data must be strings")
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _numbers(arr: np.ndarray, dtype: DataType, name: str, mixed_bools: bool) -> np.ndarray:
    where = f"input {label(name)}"
    kind = arr.dtype.kind
    if dtype is DataType.BOOL:
        if kind != "b":
            raise InvalidArgumentError(f"{where}: BOOL data must be true or false")
        return arr
    if kind == "b" or mixed_bools:
        raise InvalidArgumentError(f"{where}: {dtype.value} data must be numbers, not booleans")
    if kind not in _NUMBER_KINDS:
        raise InvalidArgumentError(f"{where}: {dtype.value} data must be numbers (got {_what(arr)})")
    if dtype.numpy.kind in _INT_KINDS:
        if kind not in _INT_KINDS:
            raise InvalidArgumentError(f"{where}: {dtype.value} data must be integers (got {_first_float(arr)})")
        check_int_range(name, dtype, arr)
        return arr.astype(dtype.numpy)
    big = _FLOAT_MAX[dtype]
    peak = float(np.abs(arr).max())
    if peak > big:
        raise InvalidArgumentError(f"{where}: value {peak:g} is out of range for {dtype.value} (|x| <= {big:g})")
    return arr.astype(dtype.numpy)


def _what(arr: np.ndarray) -> str:
    return "strings" if arr.dtype.kind in "US" else "values that are not numbers, or integers out of range"


def _first_float(arr: np.ndarray) -> str:
    flat = arr.reshape(-1)
    odd = flat[flat != np.trunc(flat)]
    return f"{float(odd[0])!r}" if odd.size else "numbers written with a decimal point or exponent"


def _has_bool(data: list[Any]) -> bool:
    """Whether a true or false hides among numbers (numpy reads [1, true] as [1, 1])."""
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif item is True or item is False:
            return True
    return False
