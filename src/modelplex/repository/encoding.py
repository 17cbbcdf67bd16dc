"""A model's serving configuration as JSON: modelplex's own (stored in the registry) and
Triton's shape (what `GET /v2/models/{m}/config` returns)."""

from __future__ import annotations

from typing import Any

from modelplex.core.model import BatchingConfig, ModelConfig, ModelId
from modelplex.core.tensors import DataType, TensorSpec
from modelplex.repository.config import triton_type
from modelplex.repository.config_torch import BACKEND_OF

def model_config_to_json(config: ModelConfig) -> dict[str, Any]:
    """Lossless JSON form of a ModelConfig (for the registry)."""
    b = config.batching
    return {
        "name": config.model.name,
        "version": config.model.version,
        "path": config.path,
        "platform": config.platform,
        "inputs": [s.to_json() for s in config.inputs],
        "outputs": [s.to_json() for s in config.outputs],
        "batching": {
            "max_batch_size": b.max_batch_size,
            "max_queue_delay_us": b.max_queue_delay_us,
            "preferred_batch_sizes": list(b.preferred_batch_sizes),
            "slo_ms": b.slo_ms,
            "priority_levels": b.priority_levels,
            "default_priority_level": b.default_priority_level,
        },
        "instance_count": config.instance_count,
        "task": config.task,
    }


def model_config_from_json(data: dict[str, Any]) -> ModelConfig:
    b = data["batching"]
    return ModelConfig(
        model=ModelId(str(data["name"]), str(data["version"])),
        path=str(data["path"]),
        platform=str(data["platform"]),
        inputs=tuple(_spec_from_json(s) for s in data["inputs"]),
        outputs=tuple(_spec_from_json(s) for s in data["outputs"]),
        batching=BatchingConfig(
            max_batch_size=int(b["max_batch_size"]),
            max_queue_delay_us=int(b["max_queue_delay_us"]),
            preferred_batch_sizes=tuple(int(p) for p in b["preferred_batch_sizes"]),
            slo_ms=None if b["slo_ms"] is None else float(b["slo_ms"]),
            priority_levels=int(b.get("priority_levels", 0)),
            default_priority_level=int(b.get("default_priority_level", 0)),
        ),
        instance_count=int(data["instance_count"]),
        task=data.get("task"),
    )


def _spec_from_json(s: dict[str, Any]) -> TensorSpec:
    return TensorSpec(str(s["name"]), DataType(s["datatype"]), tuple(int(d) for d in s["shape"]))


def to_triton_json(config: ModelConfig) -> dict[str, Any]:
    """The model configuration as Triton's `GET /v2/models/{m}/config` returns it."""
    b = config.batching

    def tensor(s: TensorSpec) -> dict[str, Any]:
        return {"name": s.name, "data_type": triton_type(s.datatype), "dims": list(s.shape)}

    out: dict[str, Any] = {
        "name": config.model.name,
        "platform": config.platform,
        "backend": BACKEND_OF.get(config.platform, ""),
        "max_batch_size": b.max_batch_size,
        "input": [tensor(s) for s in config.inputs],
        "output": [tensor(s) for s in config.outputs],
        "instance_group": [{"count": config.instance_count, "kind": "KIND_CPU"}],
    }
    if b.max_batch_size > 0:
        out["dynamic_batching"] = {
            "preferred_batch_size": list(b.preferred_batch_sizes),
            "max_queue_delay_microseconds": b.max_queue_delay_us,
        }
        if b.priority_levels:
            out["dynamic_batching"]["priority_levels"] = b.priority_levels
            out["dynamic_batching"]["default_priority_level"] = b.default_priority_level
    return out
