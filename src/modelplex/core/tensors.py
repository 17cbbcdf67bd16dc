"""KServe v2 datatypes and tensor specs."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from modelplex.core.errors import InvalidArgumentError


class DataType(enum.Enum):
    """KServe v2 tensor datatypes; the value is the protocol's spelling."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"

    @staticmethod
    def parse(name: str) -> "DataType":
        try:
            return DataType(name)
        except ValueError:
            raise InvalidArgumentError(f"unknown datatype {name!r}") from None

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype that carries this datatype (object for BYTES)."""
        return _TO_NUMPY[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element in the binary encoding (0 for BYTES, which is length-prefixed)."""
        return 0 if self is DataType.BYTES else int(_TO_NUMPY[self].itemsize)

    @staticmethod
    def from_numpy(dtype: np.dtype) -> "DataType":
        if dtype.kind in ("O", "S", "U"):
            return DataType.BYTES
        try:
            return _FROM_NUMPY[np.dtype(dtype)]
        except KeyError:
            raise InvalidArgumentError(f"numpy dtype {dtype} has no KServe v2 datatype") from None

    @staticmethod
    def from_onnx(onnx_type: str) -> "DataType":
        """Map an ONNX Runtime type string such as 'tensor(float)'."""
        try:
            return _FROM_ONNX[onnx_type]
        except KeyError:
            raise InvalidArgumentError(f"ONNX type {onnx_type} is not supported") from None


_TO_NUMPY: dict[DataType, np.dtype] = {
    DataType.BOOL: np.dtype(np.bool_),
    DataType.UINT8: np.dtype(np.uint8),
    DataType.UINT16: np.dtype(np.uint16),
    DataType.UINT32: np.dtype(np.uint32),
    DataType.UINT64: np.dtype(np.uint64),
    DataType.INT8: np.dtype(np.int8),
    DataType.INT16: np.dtype(np.int16),
    DataType.INT32: np.dtype(np.int32),
    DataType.INT64: np.dtype(np.int64),
    DataType.FP16: np.dtype(np.float16),
    DataType.FP32: np.dtype(np.float32),
    DataType.FP64: np.dtype(np.float64),
    DataType.BYTES: np.dtype(object),
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items() if k is not DataType.BYTES}
_FROM_ONNX: dict[str, DataType] = {
    "tensor(bool)": DataType.BOOL,
    "tensor(uint8)": DataType.UINT8,
    "tensor(uint16)": DataType.UINT16,
    "tensor(uint32)": DataType.UINT32,
    "tensor(uint64)": DataType.UINT64,
    "tensor(int8)": DataType.INT8,
    "tensor(int16)": DataType.INT16,
    "tensor(int32)": DataType.INT32,
    "tensor(int64)": DataType.INT64,
    "tensor(float16)": DataType.FP16,
    "tensor(float)": DataType.FP32,
    "tensor(double)": DataType.FP64,
    "tensor(string)": DataType.BYTES,
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model, as the protocol describes it."""

    name: str  # tensor name in the model graph and the protocol
    datatype: DataType  # element type
    shape: tuple[int, ...]  # full shape including the batch axis when batched; -1 = variable

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype.value, "shape": list(self.shape)}


def serialize_bytes_tensor(array: np.ndarray) -> bytes:
    """KServe v2 BYTES encoding: per element, a 4-byte little-endian length, then the bytes."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8", "surrogateescape")
        parts.append(len(raw).to_bytes(4, "little"))
        parts.append(raw)
    return b"".join(parts)


def deserialize_bytes_tensor(buf: bytes | memoryview, count: int | None = None) -> np.ndarray:
    """Inverse of serialize_bytes_tensor; `count` elements when known (checked)."""
    view = memoryview(buf)
    items: list[bytes] = []
    pos = 0
    end = len(view)
    while pos < end:
        if pos + 4 > end:
            raise InvalidArgumentError("BYTES tensor data is truncated (incomplete length prefix)")
        n = int.from_bytes(view[pos : pos + 4], "little")
        pos += 4
        if pos + n > end:
            raise InvalidArgumentError("BYTES tensor data is truncated (element longer than the data)")
        items.append(bytes(view[pos : pos + n]))
        pos += n
    if count is not None and len(items) != count:
        raise InvalidArgumentError(f"BYTES tensor has {len(items)} elements, shape needs {count}")
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
