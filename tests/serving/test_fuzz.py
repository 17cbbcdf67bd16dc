"""The fuzzing suite's generators at a small count against a real server: no 5xx, no hang, no
worker lost, and valid requests are served afterwards (benchmarks/reliability/fuzz.py runs 10k)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_fuzzed_server_answers_every_malformed_request_4xx(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reliability" / "fuzz.py"), "--http", "800", "--grpc", "200", "--seed", "7",
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert out.exists(), proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    http, grpc, crashes = result["http"], result["grpc"], result["crashes"]
    assert http["sent"] >= 800 and grpc["sent"] >= 200
    assert http["server_errors"] == 0 and grpc["server_errors"] == 0, http["server_error_examples"] + grpc["server_error_examples"]
    assert http["hangs"] == 0 and grpc["hangs"] == 0, http["server_error_examples"] + grpc["server_error_examples"]
    assert crashes == {"server_alive": True, "worker_restarts": 0, "workers_replaced": [], "workers_alive": True}
    assert result["valid_after"] and all(result["valid_after"].values()), result["valid_after"]
    assert sum(n for code, n in http["by_status"].items() if code.startswith("4")) > 0.8 * http["sent"]
    assert proc.returncode == 0, proc.stdout
