"""ModelInferRequest -> InferRequest, with every check of serving.validate done before a tensor
is built. It reads the message's fields only (no generated classes imported): any
inference.ModelInferRequest will do, modelplex's or a client library's."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.tensors import DataType
from modelplex.serving.shm import shm_ref
from modelplex.serving.types import InferInput, InferRequest, RequestedOutput
from modelplex.serving.validate import (
    bytes_array,
    check_count,
    check_int_range,
    check_parameters,
    fixed_array,
    label,
    tensor_shape,
)

# Which InferTensorContents field carries each datatype when raw contents are not used.
_CONTENTS_FIELD = {
    DataType.BOOL: "bool_contents",
    DataType.INT8: "int_contents",
    DataType.INT16: "int_contents",
    DataType.INT32: "int_contents",
    DataType.INT64: "int64_contents",
    DataType.UINT8: "uint_contents",
    DataType.UINT16: "uint_contents",
    DataType.UINT32: "uint_contents",
    DataType.UINT64: "uint64_contents",
    DataType.FP32: "fp32_contents",
    DataType.FP64: "fp64_contents",
    DataType.BYTES: "bytes_contents",
}
_ALL_FIELDS = sorted(set(_CONTENTS_FIELD.values()))



def _param_value(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def _params(raw: Any, where: str = "request") -> dict[str, Any]:
    params = {k: _param_value(v) for k, v in raw.items()}
    check_parameters(params, where)
    return params


def decode_infer(msg: Any) -> InferRequest:
    """ModelInferRequest -> InferRequest (raw contents or typed contents). Every rule of
    serving.validate is checked here, before any tensor is built."""
    params = _params(msg.parameters)
    raw = msg.raw_input_contents
    if not msg.inputs:
        raise InvalidArgumentError("request needs at least one input")
    refs = [shm_ref(_params(t.parameters, f"input {label(t.name)}"), f"input {label(t.name)}") for t in msg.inputs]
    in_message = sum(r is None for r in refs)  # inputs in shared memory have no raw contents
    if raw and len(raw) != in_message:
        note = " outside shared memory" if in_message != len(refs) else ""
        raise InvalidArgumentError(f"request has {in_message} inputs{note} but {len(raw)} raw_input_contents")
    inputs: list[InferInput] = []
    i = 0
    for t, ref in zip(msg.inputs, refs):
        try:
            dtype = DataType.parse(t.datatype)
        except InvalidArgumentError:
            raise InvalidArgumentError(f"input {label(t.name)}: unknown datatype {label(t.datatype)}") from None
        shape, count = tensor_shape(t.name, list(t.shape))
        if ref is not None:  # read from the region by the data plane
            inputs.append(InferInput(t.name, dtype, shape, np.empty(0, dtype.numpy), ref))
            continue
        if raw:
            chunk = raw[i]
            i += 1
            if t.HasField("contents"):
                raise InvalidArgumentError(f"input {label(t.name)} has both typed contents and raw_input_contents")
            if dtype is DataType.BYTES:
                array = bytes_array(t.name, shape, count, chunk)
            else:
                array = fixed_array(t.name, dtype, shape, count, chunk, "raw content")
        else:
            array = _typed(t, dtype, shape, count)
        inputs.append(InferInput(t.name, dtype, shape, array))
    where = [f"output {label(o.name)}" for o in msg.outputs]
    outputs = [RequestedOutput(o.name, shm=shm_ref(_params(o.parameters, w), w)) for o, w in zip(msg.outputs, where)] or None
    return InferRequest(msg.model_name, msg.model_version or None, inputs, outputs, msg.id or None, params)


def _typed(t: Any, dtype: DataType, shape: tuple[int, ...], count: int) -> np.ndarray:
    """An input from its typed InferTensorContents: the datatype's field only, `count` values."""
    field = _CONTENTS_FIELD.get(dtype)
    if field is None:
        raise InvalidArgumentError(f"input {label(t.name)}: {dtype.value} must be sent as raw_input_contents")
    others = [f for f in _ALL_FIELDS if f != field and len(getattr(t.contents, f))]
    if others:
        raise InvalidArgumentError(f"input {label(t.name)} is {dtype.value} (sent in {field}) but carries {', '.join(others)}")
    values = getattr(t.contents, field)
    check_count(t.name, shape, count, len(values))
    if dtype is DataType.BYTES:
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    elif dtype.numpy.kind in "iu" and dtype.itemsize < 8:
        wide = np.asarray(values, dtype=np.int64)
        check_int_range(t.name, dtype, wide)
        array = wide.astype(dtype.numpy)
    else:
        array = np.asarray(values, dtype=dtype.numpy)
    return array.reshape(shape)
