"""Typed answers of the data plane (besides inference) that each frontend encodes its own way:
HTTP as KServe v2 JSON (serving.http_codec), gRPC as protobuf messages (serving.grpc_codec)."""

from __future__ import annotations

from dataclasses import dataclass

from modelplex.core.model import ModelConfig
from modelplex.serving.stats import ModelStats


@dataclass(frozen=True)
class ServerMetadata:
    """The server's name, version and protocol extensions."""

    name: str  # "modelplex"
    version: str  # package version
    extensions: tuple[str, ...]  # KServe v2 extensions supported


@dataclass(frozen=True)
class TensorMetadata:
    """One input or output as metadata shows it (-1 for the batch axis)."""

    name: str  # tensor name
    datatype: str  # KServe v2 datatype name, e.g. "FP32"
    shape: tuple[int, ...]  # dimensions, -1 where variable


@dataclass(frozen=True)
class ModelMetadata:
    """A served model's metadata."""

    name: str  # model name
    versions: tuple[str, ...]  # versions served
    platform: str  # e.g. "onnxruntime_onnx"
    inputs: tuple[TensorMetadata, ...]  # its inputs
    outputs: tuple[TensorMetadata, ...]  # its outputs


@dataclass(frozen=True)
class RepositoryEntry:
    """One model of the repository index."""

    name: str  # model name
    version: str  # version ("" when it could not be read)
    state: str  # "READY" or "UNAVAILABLE"
    reason: str = ""  # why it is not ready


@dataclass(frozen=True)
class ModelStatistics:
    """A model version's statistics."""

    name: str  # model name
    version: str  # version
    stats: ModelStats  # counters and durations


def metadata_of(config: ModelConfig) -> ModelMetadata:
    lead = (-1,) if config.batched else ()

    return ModelMetadata(
        config.model.name, (config.model.version,), config.platform,
        tuple(TensorMetadata(s.name, s.datatype.value, lead + tuple(s.shape)) for s in config.inputs),
        tuple(TensorMetadata(s.name, s.datatype.value, lead + tuple(s.shape)) for s in config.outputs),
    )
