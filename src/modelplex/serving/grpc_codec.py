"""The data plane's answers -> KServe v2 gRPC messages (requests are decoded by serving.grpc_decode)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, serialize_bytes_tensor
from modelplex.repository.config import triton_type
from modelplex.repository.config_torch import BACKEND_OF
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb
from modelplex.serving.grpc_gen import model_config_pb2
from modelplex.serving.messages import ModelMetadata, ModelStatistics, RepositoryEntry, ServerMetadata
from modelplex.serving.stats import Duration
from modelplex.serving.types import InferResponse


def encode_infer(resp: InferResponse) -> Any:
    out = pb.ModelInferResponse(model_name=resp.model, model_version=resp.version, id=resp.id or "")
    for o in resp.outputs:
        t = out.outputs.add(name=o.name, datatype=o.datatype.value, shape=list(o.shape))
        if o.shm is not None:  # written into shared memory: an empty entry keeps the order
            t.parameters["shared_memory_region"].string_param = o.shm.region
            t.parameters["shared_memory_byte_size"].int64_param = o.shm.byte_size
            out.raw_output_contents.append(b"")
        elif o.datatype is DataType.BYTES:  # the data travels in raw_output_contents, in order
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
    c = model_config_pb2.ModelConfig(name=config.model.name, platform=config.platform, backend=BACKEND_OF.get(config.platform, ""),
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

