"""The model repository fuzz.py serves (small ONNX models built with the `onnx` package: FP32,
every integer type, BYTES) and valid requests for it, which the fuzzing strategies break."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# model -> inputs (name, datatype, dims after the batch axis); every output echoes an input
MODELS: dict[str, list[tuple[str, str, list[int]]]] = {
    "fp32": [("x", "FP32", [4])],
    "ints": [("i8", "INT8", [2]), ("u8", "UINT8", [2]), ("i32", "INT32", [2]), ("i64", "INT64", [2]),
             ("u64", "UINT64", [2]), ("b", "BOOL", [2]), ("f16", "FP16", [2])],
    "text": [("text", "BYTES", [2])],
}
_ONNX_TYPE = {"FP32": 1, "UINT8": 2, "INT8": 3, "INT32": 6, "INT64": 7, "BYTES": 8, "BOOL": 9, "FP16": 10, "UINT64": 13}
_NP = {"FP32": np.float32, "UINT8": np.uint8, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
       "FP16": np.float16, "UINT64": np.uint64}


def build_repository(root: Path) -> Path:
    """One folder per model of MODELS: identity graphs with a batch axis, max_batch_size 8."""
    import onnx
    from onnx import helper

    for model, inputs in MODELS.items():
        ins = [helper.make_tensor_value_info(n, _ONNX_TYPE[t], ["batch", *d]) for n, t, d in inputs]
        outs = [helper.make_tensor_value_info(f"{n}_out", _ONNX_TYPE[t], ["batch", *d]) for n, t, d in inputs]
        nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n, _, _ in inputs]
        onnx_model = helper.make_model(helper.make_graph(nodes, model, ins, outs), opset_imports=[helper.make_opsetid("", 17)])
        onnx_model.ir_version = 8
        onnx.checker.check_model(onnx_model)
        folder = root / model / "1"
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(onnx_model, str(folder / "model.onnx"))
        (root / model / "config.yaml").write_text("max_batch_size: 8\n")
    return root


def valid_arrays(model: str, rows: int = 2) -> dict[str, np.ndarray]:
    """A valid request's inputs for `model` (what a valid-afterwards check sends)."""
    out: dict[str, np.ndarray] = {}
    for name, dtype, dims in MODELS[model]:
        shape = (rows, *dims)
        if dtype == "BYTES":
            out[name] = np.array([f"r{i}" for i in range(int(np.prod(shape)))], dtype=object).reshape(shape)
        else:
            out[name] = (np.arange(int(np.prod(shape))) % 2).astype(_NP[dtype]).reshape(shape)
    return out


def _json_input(name: str, dtype: str, arr: np.ndarray) -> dict[str, Any]:
    data = [str(v) for v in arr.reshape(-1)] if dtype == "BYTES" else arr.reshape(-1).tolist()
    return {"name": name, "datatype": dtype, "shape": list(arr.shape), "data": data}


def valid_json(model: str, rows: int = 2) -> dict[str, Any]:
    arrays = valid_arrays(model, rows)
    return {"inputs": [_json_input(n, t, arrays[n]) for n, t, _ in MODELS[model]]}


def raw_tensor(dtype: str, arr: np.ndarray) -> bytes:
    if dtype == "BYTES":
        return b"".join(len(b).to_bytes(4, "little") + b for b in (str(v).encode() for v in arr.reshape(-1)))
    return np.ascontiguousarray(arr).tobytes()


