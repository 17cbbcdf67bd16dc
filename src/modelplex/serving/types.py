"""Transport-neutral inference messages: what frontends hand the data plane and get back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelplex.core.tensors import DataType


@dataclass(frozen=True)
class ShmRef:
    """Where a tensor lives in system shared memory: a registered region, an offset into it, and
    a byte count (serving.shm reads and writes it)."""

    region: str  # registered name
    byte_size: int  # bytes of the tensor (for a requested output: the room given)
    offset: int = 0  # from the region's start


@dataclass
class InferInput:
    """One decoded input tensor."""

    name: str  # input name
    datatype: DataType  # declared element type
    shape: tuple[int, ...]  # declared shape (batch axis first for batched models)
    array: np.ndarray  # data, already of `shape` and the datatype's dtype (empty until read when in `shm`)
    shm: ShmRef | None = None  # the data is in this shared-memory region (read by serving.shm)


@dataclass
class RequestedOutput:
    """An output the client asked for, and how it wants it encoded."""

    name: str  # output name
    binary: bool | None = None  # HTTP only: True = binary extension, None = request default
    shm: ShmRef | None = None  # write it into this shared-memory region instead of the answer


@dataclass
class InferRequest:
    """A decoded inference request."""

    model: str  # model name
    version: str | None  # version, or None for the latest ready one
    inputs: list[InferInput]  # decoded inputs
    outputs: list[RequestedOutput] | None = None  # None = all outputs
    id: str | None = None  # client's request id, echoed back
    parameters: dict[str, Any] = field(default_factory=dict)  # request parameters (timeout, ...)


@dataclass
class InferOutput:
    """One output tensor of a response."""

    name: str  # output name
    datatype: DataType  # element type
    shape: tuple[int, ...]  # shape of array
    array: np.ndarray  # the data
    shm: ShmRef | None = None  # written into this shared-memory region: sent without data


@dataclass
class InferResponse:
    """The answer to an InferRequest."""

    model: str  # model that served it
    version: str  # its version
    outputs: list[InferOutput]  # in the order requested (or the model's order)
    id: str | None = None  # echoed request id
    parameters: dict[str, Any] = field(default_factory=dict)  # e.g. the variant that served it
