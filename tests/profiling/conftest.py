"""A tiny repository for profiling tests: one MatMul/Relu MLP with a dynamic batch axis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

WIDTH = 256  # features in and out of each layer: batch 64 costs ~8 M multiply-adds, far above batch 1


def write_tiny_mlp(root: Path, name: str = "tiny", max_batch_size: int = 16) -> Path:
    """FP32 [batch, WIDTH] -> MatMul/Relu -> MatMul -> [batch, WIDTH] at root/name/1/model.onnx."""
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) * 0.05).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) * 0.05).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        [w1, w2],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = root / name / "1" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    (root / name / "config.yaml").write_text(f"max_batch_size: {max_batch_size}\n")
    return path


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    return subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "profile", *args],
        capture_output=True, text=True, timeout=timeout_s, env=env,
    )


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("profrepo")
    write_tiny_mlp(root)
    return root


@pytest.fixture(scope="session")
def cli() -> object:
    """`modelplex profile ARGS...` as a subprocess (the real entry point, real workers)."""
    return run_cli


@pytest.fixture(scope="session")
def profiled(tiny_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One real profiling run of the tiny model: (state dir, export file, the finished process)."""
    work = tmp_path_factory.mktemp("profiled")
    state, out = work / "state", work / "profiles.json"
    proc = run_cli("--repository", str(tiny_repo), "--batches", "1,2,4,16,64", "--slices", "1",
                   "--repeats", "15", "--state-dir", str(state), "--out", str(out), "--quiet")
    return state, out, proc
