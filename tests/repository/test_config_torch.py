"""PyTorch models in the repository (pytorch_libtorch): the platform config.pbtxt asks for, the
signature it must declare, the file names, and what metadata says about them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from modelplex.core import DataType, InvalidArgumentError
from modelplex.core.errors import UnsupportedError
from modelplex.repository.config_torch import TORCH_PLATFORM, served_platform, torch_signature
from modelplex.repository.encoding import to_triton_json
from modelplex.repository.folders import load_model_config, scan_repository

CONFIG = """{head}
max_batch_size: 8
input [ {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
output [ {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }} ]
"""


def _model(root: Path, name: str = "t", head: str = 'platform: "pytorch_libtorch"', file: str = "model.pt",
           config: str | None = None) -> Path:
    folder = root / name / "1"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / file, "w") as z:  # the repository checks the archive, the worker loads it
        z.writestr("t/data.pkl", b"")
    text = CONFIG.format(head=head) if config is None else config
    if text:
        (root / name / "config.pbtxt").write_text(text)
    return folder / file


@pytest.mark.parametrize(("platform", "backend", "expected"), [
    ("", "", "onnxruntime_onnx"),
    ("onnxruntime_onnx", "", "onnxruntime_onnx"),
    ("", "onnxruntime", "onnxruntime_onnx"),
    ("pytorch_libtorch", "", TORCH_PLATFORM),
    ("", "pytorch", TORCH_PLATFORM),
    ("pytorch_libtorch", "pytorch", TORCH_PLATFORM),
])
def test_served_platforms(platform: str, backend: str, expected: str) -> None:
    assert served_platform(platform, backend, "m") == expected


@pytest.mark.parametrize(("platform", "backend"), [
    ("tensorflow_savedmodel", ""), ("pytorch_libtorch", "onnxruntime"), ("onnxruntime_onnx", "pytorch"), ("", "python"),
])
def test_other_platforms_are_refused(platform: str, backend: str) -> None:
    with pytest.raises(UnsupportedError, match="not served; only onnxruntime_onnx and pytorch_libtorch"):
        served_platform(platform, backend, "m")


@pytest.mark.parametrize("head", ['platform: "pytorch_libtorch"', 'backend: "pytorch"'])
def test_a_pytorch_model_is_configured_from_its_config_pbtxt(tmp_path: Path, head: str) -> None:
    _model(tmp_path, head=head)
    cfg = load_model_config(tmp_path, "t")
    assert cfg.platform == TORCH_PLATFORM and cfg.path.endswith("model.pt")
    assert cfg.batching.max_batch_size == 8
    assert [(s.name, s.datatype, s.shape) for s in cfg.inputs] == [("INPUT__0", DataType.FP32, (4,))]
    triton = to_triton_json(cfg)
    assert triton["platform"] == TORCH_PLATFORM and triton["backend"] == "pytorch"
    inputs, outputs = torch_signature(Path(cfg.path))  # what the worker loads it with
    assert inputs[0].shape == (-1, 4) and outputs[0].name == "OUTPUT__0"


def test_torch_export_files_are_found_and_unbatched_models_keep_full_shapes(tmp_path: Path) -> None:
    config = CONFIG.format(head='platform: "pytorch_libtorch"').replace("max_batch_size: 8", "max_batch_size: 0")
    _model(tmp_path, file="model.pt2", config=config)
    cfg = load_model_config(tmp_path, "t")
    assert cfg.path.endswith("model.pt2") and cfg.batching.max_batch_size == 0 and cfg.inputs[0].shape == (4,)


@pytest.mark.parametrize(("config", "match"), [
    ("", "needs a config.pbtxt"),
    ('platform: "pytorch_libtorch"\nmax_batch_size: 8', "must declare its inputs and outputs"),
    ('platform: "pytorch_libtorch"\ninput [ { name: "INPUT__0" data_type: TYPE_FP32 } ]\n'
     'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]', "needs data_type and dims"),
    ('platform: "pytorch_libtorch"\ninput [ { name: "INPUT__0" data_type: TYPE_STRING dims: [ 1 ] } ]\n'
     'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1 ] } ]', "TYPE_STRING"),
])
def test_a_pytorch_model_without_a_full_signature_is_a_load_error(tmp_path: Path, config: str, match: str) -> None:
    _model(tmp_path, config=config)
    configs, errors = scan_repository(tmp_path)
    assert configs == [] and match in errors["t"]


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    path = _model(tmp_path)
    path.write_bytes(b"not a zip")
    with pytest.raises(InvalidArgumentError, match="not a TorchScript or torch.export file"):
        load_model_config(tmp_path, "t")
