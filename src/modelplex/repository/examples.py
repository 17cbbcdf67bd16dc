"""Generate the example model repository (mlp, cnn, resnet, transformer) with the onnx helper API.

Every model is built from seeded random weights, so the bytes written are the same on every run,
and every model has a dynamic batch axis (dim_param "batch") so the server can batch requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization needs 17; onnxruntime 1.32 runs it natively
IR_VERSION = 8  # the IR that opset 17 shipped with; older readers accept it too
SEED = 20240601  # fixed so that regenerated repositories are byte-identical

# modelplex serving settings written beside each model (config.yaml). Batch-1 latency on one
# core of the development machine: mlp 0.005 ms, cnn 0.6 ms, transformer 0.09 ms, resnet 12 ms
# (49 ms at batch 4). The SLOs leave several times that, and for the tiny models room for the
# server's own per-request overhead, which dominates their latency.
_SERVING: dict[str, dict[str, object]] = {
    "mlp": {"task": "tabular-classification", "slo_ms": 10},
    "cnn": {"task": "image-classification", "slo_ms": 20},
    "resnet": {"task": "image-classification", "slo_ms": 100, "max_batch_size": 4},
    "transformer": {"task": "text-embedding", "slo_ms": 25},
}

# Triton's own format for the cnn, so the example repository exercises both config files.
_CNN_PBTXT = """\
name: "cnn"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [
  {
    name: "input"
    data_type: TYPE_FP32
    dims: [ 3, 32, 32 ]
  }
]
output [
  {
    name: "output"
    data_type: TYPE_FP32
    dims: [ 10 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 8, 16, 32 ]
  max_queue_delay_microseconds: 0
}
instance_group [
  {
    count: 1
    kind: KIND_CPU
  }
]
"""


class _Builder:
    """Collects nodes and initializers of one graph; names are generated, weights are seeded."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)  # one stream per model: order of calls fixes weights
        self.nodes: list[onnx.NodeProto] = []  # graph nodes in topological order
        self.inits: list[onnx.TensorProto] = []  # weights and constants
        self._count = 0  # suffix for unique tensor names

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int, prefix: str = "w") -> str:
        # He initialisation keeps activations in range through deep Relu stacks (no NaN/inf).
        std = np.sqrt(2.0 / fan_in)
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), prefix)

    def bias(self, n: int) -> str:
        return self.const((self.rng.standard_normal(n) * 0.01).astype(np.float32), "b")

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def gemm(self, x: str, n_in: int, n_out: int) -> str:
        return self.op("Gemm", [x, self.weight((n_out, n_in), n_in), self.bias(n_out)], transB=1)

    def conv(self, x: str, c_in: int, c_out: int, k: int, stride: int = 1) -> str:
        w = self.weight((c_out, c_in, k, k), c_in * k * k)
        pad = k // 2
        return self.op(
            "Conv", [x, w, self.bias(c_out)], kernel_shape=[k, k], strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )

    def model(
        self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelplex"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def _finish(b: _Builder, last: str, output: str) -> None:
    # Name the graph output explicitly so clients see a stable "output" tensor.
    b.nodes.append(helper.make_node("Identity", [last], [output]))


def build_mlp() -> onnx.ModelProto:
    """FP32 [batch, 64] -> Gemm/Relu x2 -> Gemm -> [batch, 10]."""
    b = _Builder(SEED + 1)
    x = b.op("Relu", [b.gemm("input", 64, 128)])
    x = b.op("Relu", [b.gemm(x, 128, 64)])
    _finish(b, b.gemm(x, 64, 10), "output")
    return b.model(
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])],
    )


def build_cnn() -> onnx.ModelProto:
    """FP32 [batch, 3, 32, 32] -> Conv3x3 3-32, 7 x Conv3x3 32-32 (full resolution, Relu),
    global average pool, Gemm 32-256-10; 76,650 params.

    Sized so that its cost matches the reference measurements of a 78k-parameter CNN on this
    machine class (about 0.6 ms per image on one core): convolutions at full 32x32 resolution
    carry the compute (about 67 M multiply-adds) while the parameter count stays small.
    """
    b = _Builder(SEED + 2)
    x = b.op("Relu", [b.conv("input", 3, 32, 3)])
    for _ in range(CNN_BODY_LAYERS):
        x = b.op("Relu", [b.conv(x, 32, 32, 3)])
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)  # [batch, 32]
    x = b.op("Relu", [b.gemm(x, 32, 256)])
    _finish(b, b.gemm(x, 256, 10), "output")
    return b.model(
        "cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 10])],
    )


CNN_BODY_LAYERS = 7  # 32-channel 3x3 convolutions at 32x32 after the stem


# (channels, blocks) per stage. Sized for 10-40 ms per image on one core: the stem and the
# 56x56 stage carry most of the compute, while the narrow last stage keeps the file small.
RESNET_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 2), (256, 1))


def build_resnet() -> onnx.ModelProto:
    """ResNet-style FP32 [batch, 3, 224, 224] -> [batch, 1000] logits.

    Stem conv7x7/2 + maxpool, then basic residual blocks in four stages (RESNET_STAGES; each
    later stage opens with a strided conv and a 1x1 projection on the shortcut), global average
    pool and a Gemm.
    """
    b = _Builder(SEED + 3)
    stem = RESNET_STAGES[0][0]
    x = b.op("Relu", [b.conv("input", 3, stem, 7, stride=2)])  # 112x112
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])  # 56x56
    c_in = stem
    for stage, (c_out, blocks) in enumerate(RESNET_STAGES):
        for block in range(blocks):
            stride = 2 if (stage > 0 and block == 0) else 1
            y = b.op("Relu", [b.conv(x, c_in, c_out, 3, stride)])
            y = b.conv(y, c_out, c_out, 3)
            shortcut = x if (stride == 1 and c_in == c_out) else b.conv(x, c_in, c_out, 1, stride)
            x = b.op("Relu", [b.op("Add", [y, shortcut])])
            c_in = c_out
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    _finish(b, b.gemm(x, c_in, 1000), "output")
    return b.model(
        "resnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1000])],
    )


TRANSFORMER_SEQ = 32  # tokens per request (fixed: the positional table has this many rows)
TRANSFORMER_VOCAB = 1000  # token ids must be in [0, 1000)
TRANSFORMER_HIDDEN = 64  # model width; the pooled output has this many features
_HEADS = 4  # attention heads of 16 features each
_FFN = 128  # feed-forward inner width


def build_transformer() -> onnx.ModelProto:
    """INT64 token ids [batch, 32] -> 2 post-norm encoder layers -> mean-pooled [batch, 64]."""
    b = _Builder(SEED + 4)
    h, d = TRANSFORMER_HIDDEN, TRANSFORMER_HIDDEN // _HEADS
    emb = b.const((b.rng.standard_normal((TRANSFORMER_VOCAB, h)) * 0.1).astype(np.float32), "emb")
    pos = b.const((b.rng.standard_normal((TRANSFORMER_SEQ, h)) * 0.1).astype(np.float32), "pos")
    x = b.op("Add", [b.op("Gather", [emb, "input_ids"], axis=0), pos])  # [batch, seq, h]
    split_heads = b.const(np.array([0, 0, _HEADS, d], dtype=np.int64), "shape")  # 0 = copy dim
    merge_heads = b.const(np.array([0, 0, h], dtype=np.int64), "shape")
    scale = b.const(np.array(1.0 / np.sqrt(d), dtype=np.float32), "scale")

    def linear(t: str, n_in: int, n_out: int) -> str:
        return b.op("Add", [b.op("MatMul", [t, b.weight((n_in, n_out), n_in)]), b.bias(n_out)])

    def layer_norm(t: str) -> str:
        gamma = b.const(np.ones(h, dtype=np.float32), "gamma")
        beta = b.const(np.zeros(h, dtype=np.float32), "beta")
        return b.op("LayerNormalization", [t, gamma, beta], axis=-1, epsilon=1e-5)

    def heads(t: str) -> str:  # [batch, seq, h] -> [batch, heads, seq, d]
        return b.op("Transpose", [b.op("Reshape", [t, split_heads])], perm=[0, 2, 1, 3])

    for _ in range(2):
        q, k, v = (heads(linear(x, h, h)) for _ in range(3))
        scores = b.op("Mul", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale])
        ctx = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
        ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_heads])
        x = layer_norm(b.op("Add", [x, linear(ctx, h, h)]))
        ffn = linear(b.op("Relu", [linear(x, h, _FFN)]), _FFN, h)
        x = layer_norm(b.op("Add", [x, ffn]))
    _finish(b, b.op("ReduceMean", [x], axes=[1], keepdims=0), "output")
    return b.model(
        "transformer",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", TRANSFORMER_SEQ])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", TRANSFORMER_HIDDEN])],
    )


BUILDERS = {  # model name -> builder; the repository folder uses the same names
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
    "transformer": build_transformer,
}


def _yaml(settings: dict[str, object]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in settings.items())


def write_examples(out_dir: Path) -> list[str]:
    """Write `out_dir/<model>/1/model.onnx` (+ config.yaml, and config.pbtxt for cnn).

    Returns the model names written. Existing files are overwritten; other folders are left alone.
    """
    out_dir = Path(out_dir)
    names: list[str] = []
    for name, build in BUILDERS.items():
        model_dir = out_dir / name
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        onnx.save_model(build(), str(model_dir / "1" / "model.onnx"))
        (model_dir / "config.yaml").write_text(_yaml(_SERVING[name]))
        if name == "cnn":
            (model_dir / "config.pbtxt").write_text(_CNN_PBTXT)
        names.append(name)
    return names


def example_inputs(name: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random valid inputs for one of the example models (for tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    if name == "transformer":
        ids = rng.integers(0, TRANSFORMER_VOCAB, size=(batch, TRANSFORMER_SEQ), dtype=np.int64)
        return {"input_ids": ids}
    shape = {"mlp": (64,), "cnn": (3, 32, 32), "resnet": (3, 224, 224)}[name]
    return {"input": rng.standard_normal((batch, *shape)).astype(np.float32)}
