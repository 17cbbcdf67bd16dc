"""ONNX models built with the onnx package for tests (deterministic, small)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def bytes_identity(path: Path) -> Path:
    """STRING [batch, n] -> Identity -> STRING [batch, n]."""
    x = helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", "n"])
    y = helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch", "n"])
    graph = helper.make_graph([helper.make_node("Identity", ["text"], ["echo"])], "bytes_identity", [x], [y])
    return _save(graph, path)


def slow_conv(path: Path, layers: int = 10, size: int = 256) -> Path:
    """FP32 [batch, 1, size, size] through `layers` 16-channel 3x3 convolutions, then mean -> [batch, 1].

    Costs tens of ms per sample on one core: a model whose latency deadlines can bite."""
    rng = np.random.default_rng(7)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, size, size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    nodes = []
    inits = []
    prev, cin = "x", 1
    for i in range(layers):
        w = (rng.standard_normal((16, cin, 3, 3)) * 0.1).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        prev, cin = f"r{i}", 16
    nodes.append(helper.make_node("ReduceMean", [prev], ["m"], axes=[1, 2, 3], keepdims=0))
    nodes.append(helper.make_node("Unsqueeze", ["m", "ax"], ["y"]))
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "ax"))
    graph = helper.make_graph(nodes, "slow_conv", [x], [y], inits)
    return _save(graph, path)


def add_config_yaml(model_dir: Path, text: str) -> None:
    (model_dir / "config.yaml").write_text(text)


def identity_fp32(path: Path, input_name: str = "x", output_name: str = "y", width: int = 1) -> Path:
    """FP32 [batch, width] -> Identity -> FP32 [batch, width]."""
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", width])
    graph = helper.make_graph([helper.make_node("Identity", [input_name], [output_name])], "identity", [x], [y])
    return _save(graph, path)


# Every KServe v2 datatype ONNX Runtime's Identity carries, as (datatype, ONNX type, numpy dtype).
ALL_TYPES: list[tuple[str, int, str]] = [
    ("BOOL", TensorProto.BOOL, "bool"), ("UINT8", TensorProto.UINT8, "uint8"),
    ("UINT16", TensorProto.UINT16, "uint16"), ("UINT32", TensorProto.UINT32, "uint32"),
    ("UINT64", TensorProto.UINT64, "uint64"), ("INT8", TensorProto.INT8, "int8"),
    ("INT16", TensorProto.INT16, "int16"), ("INT32", TensorProto.INT32, "int32"),
    ("INT64", TensorProto.INT64, "int64"), ("FP16", TensorProto.FLOAT16, "float16"),
    ("FP32", TensorProto.FLOAT, "float32"), ("FP64", TensorProto.DOUBLE, "float64"),
    ("BYTES", TensorProto.STRING, "object"),
]


def identity_all_types(path: Path) -> Path:
    """One input `in_<type>` [batch, 2] and one output `out_<type>` per datatype in ALL_TYPES."""
    inputs, outputs, nodes = [], [], []
    for datatype, onnx_type, _ in ALL_TYPES:
        name = datatype.lower()
        inputs.append(helper.make_tensor_value_info(f"in_{name}", onnx_type, ["batch", 2]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", onnx_type, ["batch", 2]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    return _save(helper.make_graph(nodes, "identity_all_types", inputs, outputs), path)
