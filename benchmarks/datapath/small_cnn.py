"""A small CNN that is none of modelplex's examples: 1x3x32x32 in, 10 classes out, about
0.2-0.35 ms of ONNX Runtime per image on one core (three 3x3 convolutions, pooling, a dense layer).
Random weights, fixed seed; built with the `onnx` package, nothing fetched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _conv(name: str, x: str, cin: int, cout: int, rng: np.random.Generator) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    w = numpy_helper.from_array((rng.standard_normal((cout, cin, 3, 3)) * (2.0 / (9 * cin)) ** 0.5).astype(np.float32), f"{name}_w")
    b = numpy_helper.from_array(np.zeros(cout, np.float32), f"{name}_b")
    nodes = [
        helper.make_node("Conv", [x, w.name, b.name], [f"{name}_c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", [f"{name}_c"], [f"{name}_r"]),
    ]
    return nodes, [w, b], f"{name}_r"


def build(path: Path, seed: int = 7) -> Path:
    """Write the model to `path` (input `input` [-1,3,32,32] FP32, output `logits` [-1,10])."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    x = "input"
    for i, (cin, cout) in enumerate(((3, 32), (32, 96), (96, 192))):
        n, w, x = _conv(f"conv{i}", x, cin, cout, rng)
        nodes += n
        inits += w
        if i < 2:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    fc = numpy_helper.from_array((rng.standard_normal((192, 10)) * 0.1).astype(np.float32), "fc_w")
    fb = numpy_helper.from_array(np.zeros(10, np.float32), "fc_b")
    inits += [fc, fb]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]))
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
