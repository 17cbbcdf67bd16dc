"""The GPU validation script's own logic, run end to end on the CPU (--dry-run-cpu: tiny models,
CPU slices), so a Python error in it shows here and not on the rare GPU host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_cpu_runs_every_step(tmp_path: Path) -> None:
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "run.sh"), "--dry-run-cpu", "--span-s", "1.5",
                           "--budget-s", "150"], capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads((tmp_path / "gpu_validation.json").read_text())
    assert doc["mode"] == "dry-run-cpu" and doc["probe"]["note"].startswith("no GPU")
    assert [p["policy"] for p in doc["serve"]["policies"]] == ["elastic", "temporal", "exclusive"]
    assert all(p["points"] for p in doc["serve"]["policies"])
    kill = doc["serve"]["kill"]
    assert kill["unanswered"] == 0 and kill["back_s"] is not None and kill["back_s"] <= 5.0
    assert "step 1: probing" in (tmp_path / "run.log").read_text()


def test_probe_only_without_a_gpu_is_quick_and_readable(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()  # no nvidia-smi on this PATH, GPU host or not
    env = dict(os.environ, OUT=str(tmp_path), PATH=str(tmp_path / "bin"), PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "gpu_validate.py"), "--probe-only", "--dry-run-cpu"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPUs: no GPU: nvidia-smi is not installed" in done.stdout and "Traceback" not in done.stderr
    assert json.loads((tmp_path / "gpu_validation.json").read_text())["probe"]["note"].startswith("no GPU")
