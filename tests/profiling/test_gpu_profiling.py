"""Profiling on the GPU without one: `profile --gpus` says in one line that there is no GPU,
models the GPU cannot run are named and skipped, and a worker that cannot use the GPU skips its
model instead of measuring the CPU."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch_models

from modelplex.profiling.backends import GpuMpsBackend, gpu_skips
from modelplex.profiling.hardware import HostInfo
from modelplex.profiling.runner import plan_work, run_plan
from modelplex.profiling.stats import StopRule
from modelplex.profiling.storage import ProfileStore
from modelplex.repository.folders import load_model_config
from modelplex.repository.store import Registry


def test_profile_gpus_without_nvidia_smi_is_one_line(tiny_repo: Path, tmp_path: Path) -> None:
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PATH=str(tmp_path))  # no nvidia-smi on this PATH
    proc = subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "profile", "--gpus", "--repository", str(tiny_repo),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "modelplex: error: no NVIDIA GPU: nvidia-smi not found", proc.stderr


def test_models_the_gpu_cannot_run_are_named_with_the_reason(tiny_repo: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    torch_models.affine(tmp_path)
    configs = [load_model_config(tiny_repo, "tiny"), load_model_config(tmp_path, "affine")]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    skips = gpu_skips(configs)
    assert list(skips) == ["tiny"] and "no CUDA provider" in skips["tiny"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu_skips(configs) == {}


@pytest.mark.slow
def test_a_model_whose_worker_cannot_use_the_gpu_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without a usable GPU the worker refuses (DeviceError) and the run skips the model, saying
    why; with one, the model is measured on it."""
    torch_models.affine(tmp_path)
    config = load_model_config(tmp_path, "affine")
    backend = GpuMpsBackend(HostInfo(cpu_model="cpu", cpus=(0,), gpu_names=("test GPU",)))
    rule = StopRule(min_samples=3, max_samples=3, min_s=0.0, budget_s=1.0)

    async def main() -> int:
        with Registry(tmp_path / "state") as registry:
            store = ProfileStore(registry)
            plan = plan_work([config], [50, 100], [1, 2], store, backend)
            return len(await run_plan(plan, backend, store, rule))

    with caplog.at_level(logging.WARNING):
        measured = asyncio.run(main())
    if torch.cuda.is_available():
        assert measured == 1
    else:
        assert measured == 0
        skips = [r.getMessage() for r in caplog.records if "skipping model affine" in r.getMessage()]
        assert len(skips) == 1 and "CUDA" in skips[0], caplog.text
