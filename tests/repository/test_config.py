from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from modelplex.core import DataType, InvalidArgumentError, ModelId, TensorSpec
from modelplex.core.errors import UnsupportedError
from modelplex.repository.encoding import model_config_from_json, model_config_to_json, to_triton_json
from modelplex.repository.config import (
    DEFAULT_MAX_BATCH_SIZE,
    build_model_config,
    inspect_onnx,
    parse_pbtxt,
    parse_yaml,
)


def _identity_model(path: Path, shape: list[object]) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def test_parse_pbtxt_full() -> None:
    cfg = parse_pbtxt(
        """
        name: "m"  platform: "onnxruntime_onnx"  max_batch_size: 16
        input [ { name: "x" data_type: TYPE_FP32 dims: [ 3, -1 ] reshape: { shape: [ 3, 4 ] } } ]
        output { name: "y" data_type: TYPE_STRING dims: [ 1 ] }
        dynamic_batching { max_queue_delay_microseconds: 250 preferred_batch_size: [ 4, 8 ] }
        instance_group [ { count: 2 kind: KIND_CPU }, { kind: KIND_CPU } ]
        """
    )
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("m", "onnxruntime_onnx", 16)
    assert cfg.inputs[0].datatype is DataType.FP32 and cfg.inputs[0].dims == (3, -1)
    assert cfg.inputs[0].reshaped
    assert cfg.outputs[0].datatype is DataType.BYTES
    assert cfg.dynamic_batching and cfg.max_queue_delay_us == 250
    assert cfg.preferred_batch_sizes == (4, 8)
    assert cfg.instance_count == 3  # count 0 counts as 1, like Triton


def test_parse_pbtxt_absent_vs_zero_batch() -> None:
    assert parse_pbtxt('name: "m"').max_batch_size is None
    assert parse_pbtxt("max_batch_size: 0").max_batch_size == 0
    assert parse_pbtxt("").dynamic_batching is False


@pytest.mark.parametrize(
    "text", ["max_batch_size: oops", "input { nme: 'x' }", "unknown_field: 1"]
)
def test_parse_pbtxt_errors(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="config.pbtxt"):
        parse_pbtxt(text)


def test_parse_pbtxt_bf16_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="TYPE_BF16"):
        parse_pbtxt('input { name: "x" data_type: TYPE_BF16 dims: [1] }')


def test_parse_yaml() -> None:
    o = parse_yaml(
        "slo_ms: 12.5\nmax_batch_size: 8\nmax_queue_delay_us: 100\n"
        "preferred_batch_sizes: [2, 4]\ninstances: 2\ntask: image-classification\n"
    )
    assert (o.slo_ms, o.max_batch_size, o.max_queue_delay_us) == (12.5, 8, 100)
    assert (o.preferred_batch_sizes, o.instances, o.task) == ((2, 4), 2, "image-classification")
    assert parse_yaml("").slo_ms is None


@pytest.mark.parametrize(
    "text, match",
    [
        ("slo: 10", "unknown key"),
        ("slo_ms: -1", "slo_ms"),
        ("instances: 0", "instances"),
        ("preferred_batch_sizes: [a]", "preferred_batch_sizes"),
        ("- a\n- b", "mapping"),
        ("slo_ms: [unclosed", "invalid YAML"),
    ],
)
def test_parse_yaml_errors(text: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        parse_yaml(text)


def test_inspect_onnx(example_repo: Path) -> None:
    g = inspect_onnx(example_repo / "transformer" / "1" / "model.onnx")
    assert g.batchable
    assert g.inputs == (TensorSpec("input_ids", DataType.INT64, (-1, 32)),)
    assert g.outputs == (TensorSpec("output", DataType.FP32, (-1, 64)),)


def test_fixed_batch_graph_is_not_batchable(tmp_path: Path) -> None:
    g = inspect_onnx(_identity_model(tmp_path / "m.onnx", [2, 3]))
    assert not g.batchable
    cfg = build_model_config(ModelId("m", "1"), tmp_path / "m.onnx", g)
    assert cfg.batching.max_batch_size == 0 and cfg.inputs[0].shape == (2, 3)
    with pytest.raises(InvalidArgumentError, match="dynamic first dimension"):
        build_model_config(ModelId("m", "1"), tmp_path / "m.onnx", g, parse_pbtxt("max_batch_size: 4"))


def test_graph_defaults_exclude_batch_axis(tmp_path: Path) -> None:
    g = inspect_onnx(_identity_model(tmp_path / "m.onnx", ["n", 3, "w"]))
    cfg = build_model_config(ModelId("m", "1"), tmp_path / "m.onnx", g)
    assert cfg.batching.max_batch_size == DEFAULT_MAX_BATCH_SIZE
    assert cfg.inputs[0].shape == (3, -1)


def test_config_overrides_and_yaml_wins(tmp_path: Path) -> None:
    g = inspect_onnx(_identity_model(tmp_path / "m.onnx", ["n", 3, "w"]))
    triton = parse_pbtxt(
        'max_batch_size: 8 input { name: "x" data_type: TYPE_FP32 dims: [3, 5] }'
        " dynamic_batching { max_queue_delay_microseconds: 100 preferred_batch_size: 4 }"
    )
    cfg = build_model_config(ModelId("m", "1"), tmp_path / "m.onnx", g, triton, parse_yaml("max_batch_size: 4\nslo_ms: 9"))
    assert cfg.batching.max_batch_size == 4 and cfg.batching.slo_ms == 9
    assert cfg.batching.max_queue_delay_us == 100 and cfg.batching.preferred_batch_sizes == (4,)
    assert cfg.inputs[0].shape == (3, 5)  # config pins the graph's open dim
    assert cfg.outputs[0].shape == (3, -1)


@pytest.mark.parametrize(
    "pbtxt, match",
    [
        ('input { name: "nope" data_type: TYPE_FP32 dims: [3, 5] }', "'nope' is not in the ONNX graph"),
        ('input { name: "x" data_type: TYPE_INT32 dims: [3, 5] }', "config says INT32 but the graph has FP32"),
        ('input { name: "x" data_type: TYPE_FP32 dims: [-1, 3, 5] }', "exclude the batch axis"),
        ('input { name: "x" data_type: TYPE_FP32 dims: [4, 5] }', "do not match"),
        ('name: "other"', "must match the folder"),
        ('platform: "tensorflow_savedmodel"', "not served"),
        ("max_batch_size: 2 dynamic_batching { preferred_batch_size: 4 }", "exceed max_batch_size"),
    ],
)
def test_config_graph_mismatches(tmp_path: Path, pbtxt: str, match: str) -> None:
    g = inspect_onnx(_identity_model(tmp_path / "m.onnx", ["n", 3, "w"]))
    with pytest.raises((InvalidArgumentError, UnsupportedError), match=match):
        build_model_config(ModelId("m", "1"), tmp_path / "m.onnx", g, parse_pbtxt(pbtxt))


def test_corrupt_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model\x00\x01" * 10)
    with pytest.raises(InvalidArgumentError, match="not a loadable ONNX model"):
        inspect_onnx(bad)


def test_json_roundtrip_and_triton_view(example_repo: Path) -> None:
    from modelplex.repository.folders import load_model_config

    cfg = load_model_config(example_repo, "cnn")
    assert model_config_from_json(model_config_to_json(cfg)) == cfg
    tj = to_triton_json(cfg)
    assert tj["max_batch_size"] == 32 and tj["input"][0]["data_type"] == "TYPE_FP32"
    assert tj["input"][0]["dims"] == [3, 32, 32]
    assert tj["dynamic_batching"]["preferred_batch_size"] == [8, 16, 32]
    assert tj["dynamic_batching"]["max_queue_delay_microseconds"] == 0
