"""`modelplex bench` as a user runs it: a real server, the bench's counts against the server's own
statistics, and bad configs refused with one line and exit code 2 before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import models
import pytest
from server import RunningServer, start_server


def bench(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-m", "modelplex.cli", "bench", str(config), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=240)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench-repo")
    models.slow_conv(root / "conv" / "1" / "model.onnx", layers=2, size=32)
    models.bytes_identity(root / "echo" / "1" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def live(two_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(two_models, tmp_path_factory.mktemp("bench-state"), ["--cpus", "0-1", "--grpc-port", "0"])
    yield srv
    srv.stop()


def server_counts(srv: RunningServer) -> dict[str, tuple[int, int]]:
    doc = srv.get_json("/v2/models/stats")
    return {s["name"]: (s["inference_stats"]["success"]["count"], s["inference_stats"]["fail"]["count"])
            for s in doc["model_stats"]}


@pytest.mark.slow
def test_bench_counts_agree_with_the_server(live: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "two.yaml"
    config.write_text(f"""
url: http://{live.http_url}
arrival: gamma
cv: 2
rates: [60, 120]
duration_s: 2
seed: 3
models:
  - {{name: conv, slo_ms: 25, weight: 2}}
  - {{name: echo, slo_ms: 10}}
""")
    before = server_counts(live)
    proc = bench(config, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    after = server_counts(live)
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert (tmp_path / "out" / "bench.png").stat().st_size > 10_000
    assert "bench [" in proc.stderr  # the progress line
    table = proc.stdout.splitlines()
    assert table[0].split()[:3] == ["model", "rate/s", "offered/s"] and len(table) == 1 + 4 + 1
    for k, name in enumerate(("conv", "echo")):
        rows = [rung[k] for rung in doc["rungs"]]
        assert [r["model"] for r in rows] == [name, name]
        assert [r["rate_rps"] for r in rows] == ([40, 80] if name == "conv" else [20, 40])
        ok = sum(r["ok"] for r in rows) + doc["warmup_requests"][name]
        refused = sum(r["sent"] - r["ok"] for r in rows)
        success = after[name][0] - before.get(name, (0, 0))[0]
        fail = after[name][1] - before.get(name, (0, 0))[1]
        assert abs(ok - success) <= 0.02 * success, (name, ok, success)
        assert abs(refused - fail) <= max(1, 0.02 * (success + fail)), (name, refused, fail)
        assert sum(r["arrivals"] for r in rows) > 0.6 * 2 * sum(r["rate_rps"] for r in rows)
        for r in rows:
            assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
            assert r["good"] <= r["ok"] <= r["sent"] <= r["arrivals"]
            assert r["goodput_rps"] == pytest.approx(r["good"] / r["duration_s"], abs=1e-3)
        assert [s[name]["success"] for s in doc["server_counts"]] == [r["ok"] for r in rows]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,field", [
    ("url: http://127.0.0.1:9\nrate: 5\nmodels: [{name: a}]\ncolour: red\n", "colour: unknown key"),
    ("url: http://127.0.0.1:9\nrates: [5, -1]\nmodels: [{name: a}]\n", "rates[1]: must be a number > 0"),
    ("url: http://127.0.0.1:9\narrival: trace\ntrace: nowhere.txt\nmodels: [{name: a}]\n", "trace: cannot read"),
    ("repository: REPO\nrate: 5\nmodels: [{name: conv}, {name: nope}]\n", "models[1].name: model 'nope' not found"),
])
def test_bad_config_one_line_exit_2(text: str, field: str, two_models: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "bad.yaml", text.replace("REPO", str(two_models)))
    proc = bench(config, tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out").exists()  # nothing started, nothing written


@pytest.mark.slow
def test_model_missing_on_a_running_server(live: RunningServer, tmp_path: Path) -> None:
    before = server_counts(live)
    config = write(tmp_path / "c.yaml", f"url: http://{live.http_url}\nrate: 50\nmodels: [{{name: conv}}, {{name: ghost}}]\n")
    proc = bench(config, tmp_path / "out")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "models[1].name: model 'ghost' not found on the server" in lines[0], proc.stderr
    assert server_counts(live) == before  # no load was sent
