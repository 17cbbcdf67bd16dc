"""One error hierarchy with a transport-neutral code; each frontend maps codes once."""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Transport-neutral error kinds (HTTP and gRPC status are derived from these)."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    UNSUPPORTED = "unsupported"
    INTERNAL = "internal"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHENTICATED = "unauthenticated"


class ModelplexError(Exception):
    """Base of every error modelplex reports to a client or a CLI user."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(ModelplexError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFoundError(ModelplexError):
    code = ErrorCode.NOT_FOUND


class UnavailableError(ModelplexError):
    code = ErrorCode.UNAVAILABLE


class WorkerLostError(UnavailableError):
    """The worker running a request exited or stalled: the request did not run to its end and
    may be tried again on another slice of the model."""


class DeviceError(UnavailableError):
    """The device failed a batch (a CUDA error, out of memory, a cuBLAS/cuDNN failure): HTTP 503 /
    gRPC UNAVAILABLE naming the cause, not the client's 400. Not retried elsewhere: the same
    input may fail the same way."""


class DeadlineError(UnavailableError):
    """A request's deadline cannot be met; rejected before running rather than run late."""


class UnsupportedError(ModelplexError):
    code = ErrorCode.UNSUPPORTED


class InternalError(ModelplexError):
    code = ErrorCode.INTERNAL


class PayloadTooLargeError(InvalidArgumentError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnauthenticatedError(ModelplexError):
    """A call without a token that grants it (HTTP 401, gRPC UNAUTHENTICATED)."""

    code = ErrorCode.UNAUTHENTICATED
