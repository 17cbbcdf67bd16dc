"""Model identity and serving configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplex.core.tensors import TensorSpec


@dataclass(frozen=True, order=True)
class ModelId:
    """A model version: the unit that is loaded and served."""

    name: str  # model name, as in the repository folder
    version: str  # version folder name, e.g. "1"

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching settings (Triton's dynamic_batching block plus an SLO)."""

    max_batch_size: int = 0  # 0 = the model takes no batch axis; requests run one at a time
    max_queue_delay_us: int = 0  # longest a request waits for more to join its batch
    preferred_batch_sizes: tuple[int, ...] = ()  # sizes to dispatch at without waiting further
    slo_ms: float | None = None  # default deadline of a request without its own timeout


@dataclass(frozen=True)
class ModelConfig:
    """Everything the data plane needs to serve one model version."""

    model: ModelId  # name and version
    path: str  # the ONNX file
    platform: str  # "onnxruntime_onnx"
    inputs: tuple[TensorSpec, ...]  # shapes exclude the batch axis when max_batch_size > 0
    outputs: tuple[TensorSpec, ...]  # likewise
    batching: BatchingConfig = field(default_factory=BatchingConfig)  # batching and SLO
    instance_count: int = 1  # worker processes (each on its own slice) for this model
    task: str | None = None  # the task the model serves, for model-less queries

    @property
    def batched(self) -> bool:
        return self.batching.max_batch_size > 0

    def input(self, name: str) -> TensorSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None
