from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from modelplex.repository.examples import example_inputs, write_examples

EXPECTED_OUTPUT = {"mlp": (10,), "cnn": (10,), "resnet": (1000,), "transformer": (64,)}


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_layout_and_configs(example_repo: Path) -> None:
    for name in EXPECTED_OUTPUT:
        assert (example_repo / name / "1" / "model.onnx").is_file()
        assert "slo_ms:" in (example_repo / name / "config.yaml").read_text()
    assert (example_repo / "cnn" / "config.pbtxt").is_file()


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
@pytest.mark.parametrize("batch", [1, 4])
def test_models_run_in_onnxruntime(example_repo: Path, name: str, batch: int) -> None:
    sess = _session(example_repo / name / "1" / "model.onnx")
    (out,) = sess.run(None, example_inputs(name, batch))
    assert out.shape == (batch, *EXPECTED_OUTPUT[name])
    assert out.dtype == np.float32 and np.isfinite(out).all()
    # batch rows are independent: row 0 of a batch equals the same input run alone
    single = {k: v[:1] for k, v in example_inputs(name, batch).items()}
    np.testing.assert_allclose(sess.run(None, single)[0][0], out[0], rtol=1e-4, atol=1e-4)


def test_dynamic_batch_axis(example_repo: Path) -> None:
    for name in EXPECTED_OUTPUT:
        sess = _session(example_repo / name / "1" / "model.onnx")
        for arg in sess.get_inputs() + sess.get_outputs():
            assert arg.shape[0] == "batch", (name, arg.name)


def test_generation_is_deterministic(example_repo: Path, tmp_path: Path) -> None:
    write_examples(tmp_path)
    for name in ("mlp", "cnn", "transformer"):  # resnet too, but 17 MB: hashing 3 is enough
        a = (example_repo / name / "1" / "model.onnx").read_bytes()
        b = (tmp_path / name / "1" / "model.onnx").read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), name


def test_cnn_parameter_count(example_repo: Path) -> None:
    import onnx

    model = onnx.load(str(example_repo / "cnn" / "1" / "model.onnx"))
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 70_000 <= params <= 85_000
