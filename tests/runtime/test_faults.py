"""The fault classifier, table-driven: which batch errors are the client's (400), the device's
(503), and which leave the CUDA context unusable (503, the worker exits); and the slice memory
limit read from a worker's environment."""

from __future__ import annotations

import pytest

from modelplex.runtime.engines import gpu_mem_limit_bytes
from modelplex.runtime.engines_torch import positional
from modelplex.runtime.faults import Fault, classify, first_line

CASES = [
    # (error text, engine, exception type) -> fault
    ("CUDA error: an illegal memory access was encountered", "torch", "RuntimeError", Fault.POISONED),
    ("CUDA error: device-side assert triggered\nCompile with TORCH_USE_CUDA_DSA", "torch", "RuntimeError", Fault.POISONED),
    ("CUDA error: unspecified launch failure", "torch", "Error", Fault.POISONED),
    ("CUDA error: misaligned address", "torch", "RuntimeError", Fault.POISONED),
    ("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 700: an illegal memory access was encountered", "onnx", "Fail", Fault.POISONED),
    ("CUDA_ERROR_ILLEGAL_ADDRESS", "", "RuntimeError", Fault.POISONED),
    ("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8 GiB total)", "torch", "OutOfMemoryError", Fault.DEVICE),
    ("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm", "torch", "RuntimeError", Fault.DEVICE),
    ("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED", "torch", "RuntimeError", Fault.DEVICE),
    ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : BFCArena::AllocateRawInternal Failed to allocate memory", "onnx",
     "RuntimeException", Fault.DEVICE),
    ("CUDA error: no CUDA GPUs are available", "torch", "RuntimeError", Fault.DEVICE),
    ("", "onnx", "MemoryError", Fault.DEVICE),
    ("std::bad_alloc", "onnx", "RuntimeException", Fault.DEVICE),
    # a torch RuntimeError that is not about shapes or dtypes: the device's or the model's doing
    ("Unsupported operation on this backend", "torch", "RuntimeError", Fault.DEVICE),
    # input errors stay 400
    ("mat1 and mat2 shapes cannot be multiplied (1x3 and 4x2)", "torch", "RuntimeError", Fault.INPUT),
    ("expected scalar type Float but found Double", "torch", "RuntimeError", Fault.INPUT),
    ("The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1", "torch",
     "RuntimeError", Fault.INPUT),
    ("Dimension out of range (expected to be in range of [-1, 0], but got 1)", "torch", "IndexError", Fault.INPUT),
    ("missing input(s) INPUT__0", "torch", "ValueError", Fault.INPUT),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x", "onnx", "InvalidArgument", Fault.INPUT),
    ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Reshape node", "onnx",
     "RuntimeException", Fault.INPUT),
    ("this worker does not hold model 'x'", "", "KeyError", Fault.INPUT),
]


@pytest.mark.parametrize(("text", "engine", "exc_type", "fault"), CASES)
def test_classify(text: str, engine: str, exc_type: str, fault: Fault) -> None:
    assert classify(text, engine, exc_type) is fault


def test_first_line_names_the_cause_of_a_torchscript_error() -> None:
    text = ('The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript code:\n'
            '  File "m.py", line 5, in forward\n    raise RuntimeError(...)\n'
            "builtins.RuntimeError: CUDA error: an illegal memory access was encountered\n")
    assert first_line(text) == "builtins.RuntimeError: CUDA error: an illegal memory access was encountered"
    assert first_line("shape mismatch\nmore") == "shape mismatch"


def test_a_torchscript_error_is_judged_by_its_raising_line_not_the_quoted_source() -> None:
    text = ('The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript code:\n'
            '    if bool((x < 0).any()):\n        raise RuntimeError("CUDA error: an illegal memory access")\n'
            '    if bool((x > 1000).any()):\n        raise RuntimeError("CUDA out of memory.")\n'
            "        ~~~~ <--- HERE\nbuiltins.RuntimeError: CUDA out of memory.\n")
    assert classify(text, "torch", "Error") is Fault.DEVICE


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"MODELPLEX_GPU_MEM_MB": "512"}, 512 * 2**20),
    ({"MODELPLEX_GPU_MEM_MB": "0"}, None),
    ({"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=4G"}, 4 * 2**30),
    ({"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=4096M,1=2G"}, 4096 * 2**20),
    ({"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "1500MB"}, 1500 * 2**20),
    ({"MODELPLEX_GPU_MEM_MB": "256", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=4G"}, 256 * 2**20),
])
def test_slice_memory_limit_from_the_environment(env: dict[str, str], expected: int | None) -> None:
    assert gpu_mem_limit_bytes(env) == expected


@pytest.mark.parametrize("env", [{"MODELPLEX_GPU_MEM_MB": "lots"}, {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=big"}])
def test_a_malformed_memory_limit_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        gpu_mem_limit_bytes(env)


def test_positional_order_follows_tritons_index_suffix() -> None:
    assert positional(["INPUT__1", "INPUT__0", "INPUT__10"]) == ["INPUT__0", "INPUT__1", "INPUT__10"]
    assert positional(["b", "a"]) == ["b", "a"]  # no suffixes: config order
    assert positional(["x__0", "y"]) == ["x__0", "y"]
