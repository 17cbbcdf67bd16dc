"""Types and errors shared by every part of modelplex (pure data, no I/O)."""

from modelplex.core.errors import (
    DeadlineError,
    ErrorCode,
    InternalError,
    InvalidArgumentError,
    ModelplexError,
    NotFoundError,
    UnavailableError,
    UnsupportedError,
)
from modelplex.core.tensors import DataType, TensorSpec
from modelplex.core.model import BatchingConfig, ModelConfig, ModelId
from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.demand import Demand
from modelplex.core.profile import Profile, ProfilePoint
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan

__all__ = [
    "BatchingConfig",
    "DataType",
    "DeadlineError",
    "Demand",
    "DeviceKind",
    "DeviceSpec",
    "ErrorCode",
    "InternalError",
    "InvalidArgumentError",
    "ModelAssignment",
    "ModelConfig",
    "ModelId",
    "ModelplexError",
    "NotFoundError",
    "Plan",
    "Profile",
    "ProfilePoint",
    "SlicePlan",
    "SliceSpec",
    "TensorSpec",
    "UnavailableError",
    "UnsupportedError",
]
