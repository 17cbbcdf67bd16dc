"""KServe v2 gRPC messages <-> the data plane's types (the gRPC twin of serving.http_codec)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, serialize_bytes_tensor
from modelplex.repository.config import triton_type
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb
from modelplex.serving.grpc_gen import model_config_pb2
from modelplex.serving.messages import ModelMetadata, ModelStatistics, RepositoryEntry, ServerMetadata
from modelplex.serving.stats import Duration
from modelplex.serving.types import InferInput, InferRequest, InferResponse, RequestedOutput
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
    if raw and len(raw) != len(msg.inputs):
        raise InvalidArgumentError(f"request has {len(msg.inputs)} inputs but {len(raw)} raw_input_contents")
    inputs: list[InferInput] = []
    for i, t in enumerate(msg.inputs):
        try:
            dtype = DataType.parse(t.datatype)
        except InvalidArgumentError:
            raise InvalidArgumentError(f"input {label(t.name)}: unknown datatype {label(t.datatype)}") from None
        shape, count = tensor_shape(t.name, list(t.shape))
        _params(t.parameters, f"input {label(t.name)}")
        if raw:
            if t.HasField("contents"):
                raise InvalidArgumentError(f"input {label(t.name)} has both typed contents and raw_input_contents")
            if dtype is DataType.BYTES:
                array = bytes_array(t.name, shape, count, raw[i])
            else:
                array = fixed_array(t.name, dtype, shape, count, raw[i], "raw content")
        else:
            array = _typed(t, dtype, shape, count)
        inputs.append(InferInput(t.name, dtype, shape, array))
    outputs = [RequestedOutput(o.name) for o in msg.outputs] or None
    for o in msg.outputs:
        _params(o.parameters, f"output {label(o.name)}")
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


def encode_infer(resp: InferResponse) -> Any:
    out = pb.ModelInferResponse(model_name=resp.model, model_version=resp.version, id=resp.id or "")
    for o in resp.outputs:
        t = out.outputs.add(name=o.name, datatype=o.datatype.value, shape=list(o.shape))
        del t  # the tensor's data travels in raw_output_contents, in the same order
        if o.datatype is DataType.BYTES:
            out.raw_output_contents.append(serialize_bytes_tensor(o.array))
        else:
            out.raw_output_contents.append(np.ascontiguousarray(o.array).tobytes())
    for k, v in resp.parameters.items():
        param = out.parameters[k]
        if isinstance(v, bool):
            param.bool_param = v
        elif isinstance(v, int):
            param.int64_param = v
        elif isinstance(v, float):
            param.double_param = v
        else:
            param.string_param = str(v)
    return out


# ---- typed data-plane answers as protobuf messages -------------------------------------------
def server_metadata_pb(m: ServerMetadata) -> Any:
    return pb.ServerMetadataResponse(name=m.name, version=m.version, extensions=list(m.extensions))


def model_metadata_pb(m: ModelMetadata) -> Any:
    out = pb.ModelMetadataResponse(name=m.name, versions=list(m.versions), platform=m.platform)
    for t in m.inputs:
        out.inputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
    for t in m.outputs:
        out.outputs.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
    return out


def model_config_pb(config: ModelConfig) -> Any:
    b = config.batching
    c = model_config_pb2.ModelConfig(name=config.model.name, platform=config.platform, backend="onnxruntime",
                                     max_batch_size=b.max_batch_size)
    for spec, field in [(s, c.input) for s in config.inputs] + [(s, c.output) for s in config.outputs]:
        field.add(name=spec.name, data_type=model_config_pb2.DataType.Value(triton_type(spec.datatype)), dims=list(spec.shape))
    c.instance_group.add(count=config.instance_count, kind=model_config_pb2.ModelInstanceGroup.KIND_CPU)
    if b.max_batch_size > 0:
        c.dynamic_batching.preferred_batch_size.extend(b.preferred_batch_sizes)
        c.dynamic_batching.max_queue_delay_microseconds = b.max_queue_delay_us
    if b.slo_ms is not None:
        c.parameters["slo_ms"].string_value = str(b.slo_ms)
    return pb.ModelConfigResponse(config=c)


def repository_index_pb(entries: list[RepositoryEntry]) -> Any:
    out = pb.RepositoryIndexResponse()
    for e in entries:
        out.models.add(name=e.name, version=e.version, state=e.state, reason=e.reason)
    return out


def statistics_pb(stats: list[ModelStatistics]) -> Any:
    out = pb.ModelStatisticsResponse()
    for s in stats:
        st = s.stats
        m = out.model_stats.add(name=s.name, version=s.version, last_inference=st.last_inference_ms,
                                inference_count=st.inference_count, execution_count=st.execution_count)
        phases = {"success": st.success, "fail": st.fail, "queue": st.queue, "compute_input": st.compute_input,
                  "compute_infer": st.compute_infer, "compute_output": st.compute_output}
        for name, d in phases.items():
            _duration(getattr(m.inference_stats, name), d)
        for size, t in sorted(st.batch_sizes.items()):
            b = m.batch_stats.add(batch_size=size)
            _duration(b.compute_input, t.compute_input)
            _duration(b.compute_infer, t.compute_infer)
            _duration(b.compute_output, t.compute_output)
    return out


def _duration(target: Any, d: Duration) -> None:
    target.count, target.ns = d.count, d.ns

