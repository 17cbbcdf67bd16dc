"""Framing between the frontend and slice workers: a small JSON header plus raw tensor bytes.

Frame = u32 header length, u32 payload length, header (orjson), payload. Tensors travel as raw
little-endian bytes (BYTES tensors in the KServe length-prefixed encoding), never pickled. A batch's
numeric inputs may instead lie in the worker's shared-memory arena (runtime.arena): header["at"]
then gives each tensor's offset there (-1: in the payload).
"""

from __future__ import annotations

import struct
from typing import Any, Sequence

import numpy as np
import orjson

from modelplex.core.tensors import DataType, deserialize_bytes_tensor, serialize_bytes_tensor
from modelplex.runtime.arena import Arena

PREFIX = struct.Struct("<II")

# A tensor on the wire: name, datatype, shape, byte count (in payload order).
WireTensor = tuple[str, str, list[int], int]


def _is_bytes(array: np.ndarray) -> bool:
    return array.dtype == object or array.dtype.kind in ("S", "U")


def tensor_bytes(array: np.ndarray) -> bytes | memoryview:
    """Raw bytes of an array for the wire (no copy for contiguous numeric arrays)."""
    if _is_bytes(array):
        return serialize_bytes_tensor(array)
    return np.ascontiguousarray(array).data.cast("B")


def _described(name: str, array: np.ndarray, nbytes: int) -> WireTensor:
    return (name, DataType.from_numpy(array.dtype).value, list(array.shape), nbytes)


def _frame(header: dict[str, Any], tensors: list[WireTensor], bufs: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
    header["tensors"] = tensors
    head = orjson.dumps(header)
    return [PREFIX.pack(len(head), sum(len(b) for b in bufs)), head, *bufs]


def encode(header: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> list[bytes | memoryview]:
    """Frame a message; arrays are (name, array) and are described in header['tensors']."""
    bufs = [tensor_bytes(a) for _, a in arrays]
    return _frame(header, [_described(name, a, len(b)) for (name, a), b in zip(arrays, bufs)], bufs)


def encode_placed(header: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]], arena: Arena) -> tuple[list[bytes | memoryview], list[int]]:
    """Frame a message with its numeric arrays copied into `arena` where they fit (the others
    travel in the payload); also returns the regions taken (the caller frees them once the
    answer arrives)."""
    at: list[int] = []
    tensors: list[WireTensor] = []
    bufs: list[bytes | memoryview] = []
    for name, a in arrays:
        start = None if _is_bytes(a) else arena.alloc(a.nbytes)
        if start is None:
            bufs.append(tensor_bytes(a))
            at.append(-1)
            tensors.append(_described(name, a, len(bufs[-1])))
            continue
        np.copyto(np.frombuffer(arena.buffer, a.dtype, a.size, start).reshape(a.shape), a)
        at.append(start)
        tensors.append(_described(name, a, a.nbytes))
    taken = [s for s in at if s >= 0]
    if taken:
        header["at"] = at
    return _frame(header, tensors, bufs), taken


def decode_tensors(header: dict[str, Any], payload: bytes | bytearray | memoryview,
                   arena: memoryview | None = None) -> list[tuple[str, np.ndarray]]:
    """Arrays described by header['tensors'], as views into payload (or the arena) where possible."""
    out: list[tuple[str, np.ndarray]] = []
    view = memoryview(payload)
    pos = 0
    tensors = header.get("tensors", [])
    at = header.get("at") or [-1] * len(tensors)
    for (name, dtype_name, shape, nbytes), start in zip(tensors, at):
        dtype = DataType(dtype_name)
        if start >= 0:
            if arena is None:
                raise ValueError(f"tensor {name} is in a shared-memory arena this worker does not have")
            out.append((name, np.frombuffer(arena, dtype.numpy, nbytes // dtype.numpy.itemsize, start).reshape(shape)))
            continue
        chunk = view[pos : pos + nbytes]
        pos += nbytes
        if dtype is DataType.BYTES:
            count = int(np.prod(shape)) if shape else 1
            arr = deserialize_bytes_tensor(chunk, count).reshape(shape)
        else:
            arr = np.frombuffer(chunk, dtype=dtype.numpy).reshape(shape)
        out.append((name, arr))
    return out
