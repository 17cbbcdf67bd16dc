"""Framing between the frontend and slice workers: a small JSON header plus raw tensor bytes.

Frame = u32 header length, u32 payload length, header (orjson), payload. Tensors travel as raw
little-endian bytes (BYTES tensors in the KServe length-prefixed encoding), never pickled.
"""

from __future__ import annotations

import struct
from typing import Any, Sequence

import numpy as np
import orjson

from modelplex.core.tensors import DataType, deserialize_bytes_tensor, serialize_bytes_tensor

PREFIX = struct.Struct("<II")

# A tensor on the wire: name, datatype, shape, byte count (in payload order).
WireTensor = tuple[str, str, list[int], int]


def tensor_bytes(array: np.ndarray) -> bytes | memoryview:
    """Raw bytes of an array for the wire (no copy for contiguous numeric arrays)."""
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        return serialize_bytes_tensor(array)
    return np.ascontiguousarray(array).data.cast("B")


def encode(header: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]]) -> list[bytes | memoryview]:
    """Frame a message; arrays are (name, array) and are described in header['tensors']."""
    bufs = [tensor_bytes(a) for _, a in arrays]
    header["tensors"] = [
        (name, DataType.from_numpy(a.dtype).value, list(a.shape), len(b))
        for (name, a), b in zip(arrays, bufs)
    ]
    head = orjson.dumps(header)
    total = sum(len(b) for b in bufs)
    return [PREFIX.pack(len(head), total), head, *bufs]


def decode_tensors(header: dict[str, Any], payload: bytes | bytearray | memoryview) -> list[tuple[str, np.ndarray]]:
    """Arrays described by header['tensors'], as views into payload where possible."""
    out: list[tuple[str, np.ndarray]] = []
    view = memoryview(payload)
    pos = 0
    for name, dtype_name, shape, nbytes in header.get("tensors", []):
        dtype = DataType(dtype_name)
        chunk = view[pos : pos + nbytes]
        pos += nbytes
        if dtype is DataType.BYTES:
            count = int(np.prod(shape)) if shape else 1
            arr = deserialize_bytes_tensor(chunk, count).reshape(shape)
        else:
            arr = np.frombuffer(chunk, dtype=dtype.numpy).reshape(shape)
        out.append((name, arr))
    return out
