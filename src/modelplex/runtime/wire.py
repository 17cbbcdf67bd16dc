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


def encode_placed(header: dict[str, Any], arrays: Sequence[tuple[str, np.ndarray]], arena: Arena) -> tuple[list[bytes | memoryview], list[int]]:
    """Frame a message with its numeric arrays copied into `arena` where they fit; also returns
    the regions taken (the caller frees them once the answer arrives)."""
    at: list[int] = []
    inline: list[tuple[str, np.ndarray]] = []
    described: list[WireTensor] = []
    for name, a in arrays:
        start = None if a.dtype == object or a.dtype.kind in ("S", "U") else arena.alloc(a.nbytes)
        if start is None:
            inline.append((name, a))
            at.append(-1)
            described.append((name, "", [], 0))
            continue
        np.copyto(np.frombuffer(arena.buffer, a.dtype, a.size, start).reshape(a.shape), a)
        at.append(start)
        described.append((name, DataType.from_numpy(a.dtype).value, list(a.shape), a.nbytes))
    frames = encode(header, inline)
    taken = [s for s in at if s >= 0]
    if not taken:
        return frames, taken
    sent = iter(header["tensors"])
    header["tensors"] = [next(sent) if s < 0 else d for s, d in zip(at, described)]
    header["at"] = at
    head = orjson.dumps(header)
    return [PREFIX.pack(len(head), PREFIX.unpack(frames[0])[1]), head, *frames[2:]], taken


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
