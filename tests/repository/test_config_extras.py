"""config.pbtxt's model_warmup and priority levels, and config.yaml's priority_levels."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper
import onnx

from modelplex.core import DataType, InvalidArgumentError, ModelId
from modelplex.core.errors import UnsupportedError
from modelplex.core.model import WarmupInput, WarmupSample
from modelplex.repository.config import build_model_config, inspect_onnx, parse_pbtxt, parse_yaml
from modelplex.repository.encoding import model_config_from_json, model_config_to_json, to_triton_json

WARMUP = """
max_batch_size: 8
model_warmup {
  name: "zeros" batch_size: 4 count: 3
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [3] zero_data: true } }
}
model_warmup { name: "noise" inputs { key: "x" value { data_type: TYPE_FP32 dims: [3] random_data: true } } }
"""


def _model(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def _build(tmp_path: Path, pbtxt: str, yaml: str = "") -> object:
    path = _model(tmp_path)
    return build_model_config(ModelId("m", "1"), path, inspect_onnx(path), parse_pbtxt(pbtxt), parse_yaml(yaml))


def test_warmup_samples_parsed(tmp_path: Path) -> None:
    cfg = _build(tmp_path, WARMUP)
    assert cfg.warmup == (  # type: ignore[attr-defined]
        WarmupSample("zeros", 4, (WarmupInput("x", DataType.FP32, (3,), False),), 3),
        WarmupSample("noise", 1, (WarmupInput("x", DataType.FP32, (3,), True),), 1),  # count 0 = once
    )


@pytest.mark.parametrize(
    ("sample", "match"),
    [
        ('inputs { key: "z" value { data_type: TYPE_FP32 dims: [3] zero_data: true } }', r"gives inputs \['z'\]"),
        ('inputs { key: "x" value { data_type: TYPE_INT32 dims: [3] zero_data: true } }', "is INT32 \\[3\\]"),
        ('inputs { key: "x" value { data_type: TYPE_FP32 dims: [4] zero_data: true } }', "takes FP32 \\[3\\]"),
        ('batch_size: 9 inputs { key: "x" value { data_type: TYPE_FP32 dims: [3] zero_data: true } }', "exceeds max_batch_size"),
        ('inputs { key: "x" value { data_type: TYPE_FP32 dims: [3] } }', "zero_data: true or random_data"),
        ('inputs { key: "x" value { dims: [3] zero_data: true } }', "data_type is missing"),
        ('inputs { key: "x" value { data_type: TYPE_FP32 dims: [3] input_data_file: "f" } }', "input_data_file is not supported"),
        ("", "has no inputs"),
    ],
)
def test_bad_warmup_is_a_load_error(tmp_path: Path, sample: str, match: str) -> None:
    with pytest.raises((InvalidArgumentError, UnsupportedError), match=match):
        _build(tmp_path, f'max_batch_size: 8 model_warmup {{ name: "w" {sample} }}')


@pytest.mark.parametrize(
    ("pbtxt", "yaml", "levels"),
    [
        ("max_batch_size: 8", "", (0, 0)),
        ("max_batch_size: 8 dynamic_batching { priority_levels: 3 default_priority_level: 3 }", "", (3, 3)),
        ("max_batch_size: 8 dynamic_batching { priority_levels: 4 }", "", (4, 2)),  # default: the middle
        ("max_batch_size: 8", "priority_levels: 2", (2, 1)),
        ("max_batch_size: 8", "priority_levels: 3\ndefault_priority_level: 1", (3, 1)),
        ("max_batch_size: 8 dynamic_batching { priority_levels: 3 default_priority_level: 3 }", "priority_levels: 5", (5, 3)),
        ("max_batch_size: 8 dynamic_batching { priority_levels: 3 default_priority_level: 3 }", "priority_levels: 0", (0, 0)),
    ],
)
def test_priority_levels(tmp_path: Path, pbtxt: str, yaml: str, levels: tuple[int, int]) -> None:
    cfg = _build(tmp_path, pbtxt, yaml)
    b = cfg.batching  # type: ignore[attr-defined]
    assert (b.priority_levels, b.default_priority_level) == levels
    assert model_config_from_json(model_config_to_json(cfg)).batching == b  # type: ignore[arg-type]
    if levels[0]:
        assert to_triton_json(cfg)["dynamic_batching"]["priority_levels"] == levels[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pbtxt", "yaml", "match"),
    [
        ("max_batch_size: 8 dynamic_batching { priority_levels: 2 default_priority_level: 3 }", "", "between 1 and priority_levels"),
        ("max_batch_size: 8", "priority_levels: 2\ndefault_priority_level: 5", "between 1 and priority_levels"),
        ("max_batch_size: 8", "priority_levels: -1", "priority_levels must be an integer >= 0"),
        ("max_batch_size: 8", "priority_levels: high", "priority_levels must be an integer"),
    ],
)
def test_bad_priority_levels(tmp_path: Path, pbtxt: str, yaml: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        _build(tmp_path, pbtxt, yaml)
