"""Which errors of a batch are the client's and which the device's: a pure function of the error.

A batch can fail because of what was sent (a shape or dtype the model rejects: 400) or because
of the device (CUDA error, out of memory, a cuBLAS/cuDNN failure: 503 naming the cause). Some
device errors are sticky: after an illegal address, a device-side assert or a launch failure the
process's CUDA context is unusable and every later call fails, so the worker answers the batch
and exits, and the slice starts a fresh one. The decision reads the error's text (CUDA reports
through exception messages in both ONNX Runtime and PyTorch), so it is testable without a GPU.
"""

from __future__ import annotations

import enum
import re


class Fault(enum.Enum):
    """What a failed batch says about the worker."""

    INPUT = "input"  # the request's fault (400); the worker is fine
    DEVICE = "device"  # the device failed this batch (503); the worker is fine
    POISONED = "poisoned"  # the device failed and the worker's CUDA context is lost (503, worker exits)


# Sticky CUDA errors: the context cannot be used after them (CUDA runtime docs, "sticky errors").
_POISONED = re.compile(
    r"illegal memory access|illegal address|device-side assert|unspecified launch failure"
    r"|launch failure|misaligned address|illegal instruction|hardware stack error"
    r"|uncorrectable ECC|CUDA_ERROR_ILLEGAL_ADDRESS|cudaErrorIllegalAddress|cudaErrorAssert"
    r"|cudaErrorLaunchFailure|CUDA_ERROR_LAUNCH_FAILED|context is destroyed",
    re.IGNORECASE,
)
# Device errors that leave the context usable (out of memory, library status codes, CUDA errors).
_DEVICE = re.compile(
    r"out of memory|CUBLAS|CUDNN|CUFFT|CURAND|CUSOLVER|CUDA error|CUDA failure|cudaError|CUDA_ERROR"
    r"|CUDA driver|no CUDA GPUs|Failed to allocate memory|BFCArena|std::bad_alloc|NCCL|MPS server",
    re.IGNORECASE,
)
# PyTorch errors that are the input's fault (shapes, dtypes, ranks, sizes).
_TORCH_INPUT = re.compile(
    r"shape|size mismatch|sizes of tensors|must match the size|dimension|dtype|scalar type"
    r"|mat1 and mat2|expected (?:input|argument|tensor|a tensor|scalar)|number of (?:dims|dimensions)"
    r"|index .* out of (?:range|bounds)|channels|too many indices|cannot be multiplied|view size",
    re.IGNORECASE,
)


# The raising line of a TorchScript error, after the interpreter's traceback (which quotes the
# model's source, other `raise` statements included): "builtins.RuntimeError: CUDA error: ...".
_RAISED = re.compile(r"^[\w.]*(?:Error|Exception): ", re.MULTILINE)


def cause(text: str) -> str:
    """The part of an error message that says what happened: for a TorchScript error, from its
    last raising line on (the traceback before it quotes source code); else the whole text."""
    if "TorchScript" not in text:
        return text
    found = list(_RAISED.finditer(text))
    return text[found[-1].start():] if found else text


def classify(text: str, engine: str = "", exc_type: str = "") -> Fault:
    """The fault behind a failed batch, from its error message, the engine that ran it ("onnx",
    "torch" or "" for errors outside an engine) and the exception's type name.

    Device patterns win over everything; a PyTorch RuntimeError that is not about shapes or
    dtypes is the device's (or the model's) doing, not the request's; anything else is an input
    error, as before."""
    text = cause(text)
    if _POISONED.search(text):
        return Fault.POISONED
    if _DEVICE.search(text) or exc_type in ("MemoryError", "OutOfMemoryError"):
        return Fault.DEVICE
    if engine == "torch" and exc_type in ("RuntimeError", "Error", "JITException") and not _TORCH_INPUT.search(text):
        return Fault.DEVICE
    return Fault.INPUT


def first_line(text: str, limit: int = 300) -> str:
    """The cause in one line (PyTorch errors carry TorchScript tracebacks after it)."""
    lines = [ln.strip() for ln in cause(text).splitlines() if ln.strip()]
    return (lines[0] if lines else text)[:limit]
