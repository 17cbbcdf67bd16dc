from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelplex.core import InvalidArgumentError, ModelId, NotFoundError
from modelplex.repository.folders import load_model_config, scan_repository
from modelplex.repository.store import SCHEMA_VERSION, ModelState, Registry


@pytest.fixture()
def repo(example_repo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("mlp", "cnn"):  # small models: copying resnet's 17 MB per test is wasted time
        shutil.copytree(example_repo / name, root / name)
    return root


def test_scan_examples(example_repo: Path) -> None:
    configs, errors = scan_repository(example_repo)
    assert errors == {}
    assert sorted(str(c.model) for c in configs) == ["cnn/1", "mlp/1", "resnet/1", "transformer/1"]
    cnn = next(c for c in configs if c.model.name == "cnn")
    assert cnn.batching.max_batch_size == 32 and cnn.batching.slo_ms == 20
    assert cnn.task == "image-classification"


def test_bad_models_reported_others_load(repo: Path) -> None:
    (repo / "corrupt" / "1").mkdir(parents=True)
    (repo / "corrupt" / "1" / "model.onnx").write_bytes(b"\x08\x07garbage" * 50)
    (repo / "empty" / "1").mkdir(parents=True)  # version folder without model.onnx
    (repo / "noversions").mkdir()
    shutil.copytree(repo / "mlp", repo / "badyaml")
    (repo / "badyaml" / "config.yaml").write_text("slo: 5\n")
    shutil.copytree(repo / "mlp", repo / "badpbtxt")
    (repo / "badpbtxt" / "config.pbtxt").write_text('input { name: "wrong" }')
    (repo / "not_a_model.txt").write_text("ignored")

    configs, errors = scan_repository(repo)
    assert sorted(str(c.model) for c in configs) == ["cnn/1", "mlp/1"]
    assert set(errors) == {"corrupt", "empty", "noversions", "badyaml", "badpbtxt"}
    assert "not a loadable ONNX model" in errors["corrupt"]
    assert "missing" in errors["empty"] and "model.onnx" in errors["empty"]
    assert "unknown key" in errors["badyaml"]
    assert "'wrong' is not in the ONNX graph" in errors["badpbtxt"]
    assert all("\n" not in msg for msg in errors.values())


def test_load_model_config_versions(repo: Path) -> None:
    shutil.copytree(repo / "mlp" / "1", repo / "mlp" / "10")
    shutil.copytree(repo / "mlp" / "1", repo / "mlp" / "2")
    assert load_model_config(repo, "mlp").model == ModelId("mlp", "10")  # numeric, not text, order
    assert load_model_config(repo, "mlp", "2").model == ModelId("mlp", "2")
    with pytest.raises(NotFoundError):
        load_model_config(repo, "mlp", "7")
    with pytest.raises(NotFoundError):
        load_model_config(repo, "absent")
    with pytest.raises(InvalidArgumentError):
        load_model_config(repo, "../etc")


def test_scan_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        scan_repository(tmp_path / "nope")


def test_registry_roundtrip_and_persistence(repo: Path, tmp_path: Path) -> None:
    cnn = load_model_config(repo, "cnn")
    state = tmp_path / "state"
    with Registry(state) as reg:
        assert reg.schema_version() == SCHEMA_VERSION
        reg.upsert(cnn.model, cnn.path, cnn, now=100.0)
        reg.upsert(ModelId("broken", "1"), "", None, ModelState.UNAVAILABLE, "bad file", now=101.0)
        got = reg.get("cnn", "1")
        assert got is not None and got.config == cnn and got.state is ModelState.READY
        assert got.task == "image-classification" and got.updated_at == 100.0
        reg.set_state("cnn", "1", ModelState.UNAVAILABLE, "unloaded", now=102.0)
        with pytest.raises(NotFoundError):
            reg.set_state("nope", "1", ModelState.READY)
        reg.put_profile("cnn", "cpu-x2", "cpu", {"points": [[1, 1, 0.5]]})
    with Registry(state) as reg:  # a new instance sees everything
        records = reg.list()
        assert [str(r.model) for r in records] == ["broken/1", "cnn/1"]
        assert records[0].config is None and records[0].reason == "bad file"
        assert records[1].state is ModelState.UNAVAILABLE and records[1].reason == "unloaded"
        assert records[1].config == cnn
        assert reg.get_profile("cnn", "cpu-x2", "cpu") == {"points": [[1, 1, 0.5]]}
        assert reg.get_profile("cnn", "other", "cpu") is None
        assert reg.delete("cnn") == 1 and reg.get("cnn", "1") is None
        assert reg.list("broken")[0].model == ModelId("broken", "1")


def test_registry_unwritable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(InvalidArgumentError, match="is not writable") as info:
        Registry(blocker / "state")
    assert "\n" not in str(info.value)
