"""Model identity and serving configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplex.core.tensors import DataType, TensorSpec


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
    priority_levels: int = 0  # request priority levels (1 = highest); 0 = one level for all
    default_priority_level: int = 0  # level of a request that names none (1..priority_levels)


@dataclass(frozen=True)
class WarmupInput:
    """One input of a warmup sample (config.pbtxt's model_warmup inputs)."""

    name: str  # the model input it feeds
    datatype: DataType  # its element type
    dims: tuple[int, ...]  # its shape without the batch axis
    random: bool  # random data (seeded); else zeros


@dataclass(frozen=True)
class WarmupSample:
    """A request run on a new worker before its slice takes traffic (Triton's model_warmup)."""

    name: str  # the sample's name, for the log
    batch_size: int  # rows (1 for a model without a batch axis)
    inputs: tuple[WarmupInput, ...]  # one per model input
    count: int = 1  # runs of this sample


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
    warmup: tuple[WarmupSample, ...] = ()  # run on every new worker before its slice is ready

    @property
    def batched(self) -> bool:
        return self.batching.max_batch_size > 0

    def input(self, name: str) -> TensorSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None
