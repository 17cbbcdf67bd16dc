"""The digits example task: trained models with real, different accuracies, registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import modelplex  # noqa: F401
from modelplex.repository.registry_variants import list_variants
from modelplex.repository.store import Registry
from modelplex.repository.tasks import DIGITS_MODELS, TASK, VALIDATION_FILENAME, write_task_examples
from modelplex.repository.variants import ProfileSettings


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Registry]:
    out = tmp_path_factory.mktemp("tasks")
    reg = Registry(tmp_path_factory.mktemp("state"))
    write_task_examples(out, reg, profile=False)
    return out, reg


def test_files_written(digits: tuple[Path, Registry]) -> None:
    out, _ = digits
    data = np.load(out / VALIDATION_FILENAME)
    assert data["inputs"].shape == (450, 64) and data["labels"].shape == (450,)
    for name in DIGITS_MODELS:
        onnx.checker.check_model(onnx.load(str(out / name / "1" / "model.onnx")))
        assert "task: digits" in (out / name / "config.yaml").read_text()


def test_registered_with_real_top1_accuracies(digits: tuple[Path, Registry]) -> None:
    _, reg = digits
    variants = {v.name: v for v in list_variants(reg, task=TASK)}
    fp32 = {m: variants[f"{m}:fp32"].accuracy for m in DIGITS_MODELS}
    assert all(v.accuracy_kind == "top1" and v.validation_samples == 450 for v in variants.values())
    assert all(a is not None and 0.85 <= a <= 1.0 for a in fp32.values()), fp32
    # bigger models are more accurate: logistic regression < MLP 32 < MLP 256x128
    assert fp32["digits-logreg"] < fp32["digits-mlp32"] < fp32["digits-mlp256"]  # type: ignore[operator]
    for m in DIGITS_MODELS:  # MatMul graphs: dynamic and static INT8 both apply
        assert {f"{m}:{p}" for p in ("fp32", "int8-dynamic", "int8-static", "fp16")} <= set(variants)
        for p in ("int8-dynamic", "int8-static"):
            assert abs(variants[f"{m}:{p}"].accuracy - fp32[m]) <= 0.03  # type: ignore[operator]


def test_rerun_skips_registered_models(digits: tuple[Path, Registry]) -> None:
    out, reg = digits
    assert write_task_examples(out, reg, profile=False) == {}
    assert len(list_variants(reg, task=TASK)) == 4 * len(DIGITS_MODELS)


def test_profiled_registration_of_one_digits_model(digits: tuple[Path, Registry], tmp_path: Path) -> None:
    from modelplex.repository.registry_variants import register
    from modelplex.repository.variants import worker_profiler

    out, _ = digits
    reg = Registry(tmp_path / "state")
    variants = register(reg, out / "digits-mlp32" / "1" / "model.onnx", TASK, "mlp32", out / VALIDATION_FILENAME,
                        profiler=worker_profiler(ProfileSettings(slice_sizes=(1,), batches=(1,), budget_s=0.05)))
    cpu = [v for v in variants if v.device_kind == "cpu"]
    assert len(cpu) == 3 and all(v.p50_ms(1) and v.memory_mb for v in cpu)
