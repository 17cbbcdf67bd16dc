"""The plan / simulate CLI as a user runs it: subprocesses, files, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelplex.planning.synthetic import gpu_profiles

DEMAND = """models:
  - {model: resnet50, rate_rps: 2000, slo_ms: 108}
  - {model: mobilenetv2, rate_rps: 3000, slo_ms: 64}
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelplex.cli_plan", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "p.json").write_text(json.dumps([p.to_json() for p in gpu_profiles(["resnet50", "mobilenetv2"])]))
    (d / "d.yaml").write_text(DEMAND)
    return d


def test_plan_then_simulate(files: Path) -> None:
    out = files / "plan.json"
    png = files / "plan.png"
    r = _run("plan", "--demand", str(files / "d.yaml"), "--profiles", str(files / "p.json"), "--devices", "gpu:2", "--out", str(out), "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "resnet50" in r.stdout and "slice" in r.stdout
    data = json.loads(out.read_text())
    assert data["policy"] == "elastic" and data["demand"][0]["slo_ms"] == 108
    assert png.read_bytes()[:4] == b"\x89PNG"
    s = _run("simulate", "--plan", str(out), "--profiles", str(files / "p.json"), "--trace", "poisson:scale=0.5", "--duration", "1", "--seed", "3")
    assert s.returncode == 0, s.stderr
    total = [line for line in s.stdout.splitlines() if line.startswith("TOTAL")][0]
    assert float(total.split()[2]) > 99.0


@pytest.mark.parametrize(
    "demand, devices, needle",
    [
        ("models: [{model: foo, rate_rps: 1, slo_ms: 100}]", "gpu:1", "model foo: unknown model"),
        ("models: [{model: resnet50, rate_rps: -5, slo_ms: 100}]", "gpu:1", "rate_rps must be >= 0"),
        ("models: [{model: resnet50, rate_rps: 5, slo_ms: 1}]", "gpu:1", "below its fastest possible latency"),
        ("models: [{model: resnet50, rate_rps: 5, slo_ms: 100", "gpu:1", "malformed YAML"),
        ("models: [{model: resnet50, rate_rps: 5, slo_ms: 100}]", "tpu:3", "devices: cannot read"),
        ("models: [{model: resnet50, rate: 5, slo_ms: 100}]", "gpu:1", "unknown key(s) rate"),
    ],
)
def test_bad_input_is_one_line_exit_2(files: Path, tmp_path: Path, demand: str, devices: str, needle: str) -> None:
    (tmp_path / "bad.yaml").write_text(demand)
    r = _run("plan", "--demand", str(tmp_path / "bad.yaml"), "--profiles", str(files / "p.json"), "--devices", devices)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_missing_file_and_unserved(files: Path) -> None:
    r = _run("plan", "--demand", str(files / "none.yaml"), "--profiles", str(files / "p.json"), "--devices", "gpu:1")
    assert r.returncode == 2 and "cannot read" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (files / "huge.yaml").write_text("resnet50: {rate_rps: 1000000, slo_ms: 108}\n")
    r = _run("plan", "--demand", str(files / "huge.yaml"), "--profiles", str(files / "p.json"), "--devices", "gpu:1")
    assert r.returncode == 1 and "unserved resnet50" in r.stderr


def test_add_subcommands_registers_on_a_foreign_parser() -> None:
    import argparse

    from modelplex.cli_plan import add_subcommands

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["plan", "--demand", "/nonexistent", "--profiles", "x", "--devices", "gpu:1"])
    assert args.func(args) == 2


CSV = """model,slice_size,batch,processes,latency_ms,memory_mb
resnet50,1g,8,1,10.0,2000
resnet50,1g,16,1,18.0,
resnet50,3g.40gb,32,1,12.0,
resnet50,3g,64,2,40.0,
resnet50,7,64,1,12.0,
resnet50,7,128,1,14.0,
"""


def test_minimize_devices_from_a_csv_table(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(CSV)
    (tmp_path / "d.yaml").write_text("resnet50: {rate_rps: 20000, slo_ms: 100}\n")
    out = tmp_path / "plan.json"
    r = _run("plan", "--demand", str(tmp_path / "d.yaml"), "--profiles", str(tmp_path / "p.csv"), "--devices", "mig:16@a100-80gb",
             "--minimize-devices", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "min-devices:" in r.stdout and "lower bound" in r.stdout and "processes" in r.stdout
    assert "interference: none" in r.stdout
    data = json.loads(out.read_text())
    assert data["min_devices"]["devices"] == len(data["devices"]) >= data["min_devices"]["lower_bound"]
    assert max(a["batch"] for s in data["slices"] for a in s["assignments"]) > 32  # batches as large as the table holds
    assert all(s["mig_start"] >= 0 for s in data["slices"])
    capped = _run("plan", "--demand", str(tmp_path / "d.yaml"), "--profiles", str(tmp_path / "p.csv"), "--devices", "mig:16@a100-80gb",
                  "--max-batch", "16", "--out", str(out))
    assert capped.returncode == 0, capped.stderr
    assert max(a["batch"] for s in json.loads(out.read_text())["slices"] for a in s["assignments"]) <= 16


@pytest.mark.parametrize(
    "csv_text, extra, needle",
    [
        (CSV.replace("1g,16,1,18.0", "1g,sixteen,1,18.0"), [], "line 3: batch must be an integer"),
        (CSV, ["--max-batch", "-1"], "--max-batch must be >= 0"),
        (CSV, ["--devices", "mig:1@v100"], "unknown GPU model"),
    ],
)
def test_csv_and_flag_errors_are_one_line(tmp_path: Path, csv_text: str, extra: list[str], needle: str) -> None:
    (tmp_path / "p.csv").write_text(csv_text)
    (tmp_path / "d.yaml").write_text("resnet50: {rate_rps: 100, slo_ms: 100}\n")
    args = ["plan", "--demand", str(tmp_path / "d.yaml"), "--profiles", str(tmp_path / "p.csv"), "--devices", "mig:2", *extra]
    r = _run(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_plan_prices_report_the_cost_and_the_exclusive_baseline(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    r = _run("plan", "--demand", str(files / "d.yaml"), "--profiles", str(files / "p.json"), "--devices", "mig:2",
             "--prices", "gpu=2.50/h,cpu-core=0.04/h", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cost = json.loads(out.read_text())["cost"]
    mine, excl = cost["plan"], cost["exclusive"]
    gpus = len({s["device_id"] for s in json.loads(out.read_text())["slices"]})
    assert mine["usage"][0]["used"] == gpus and mine["usage"][0]["kind"] == "gpu-mig"
    assert mine["cost_per_hour"] == pytest.approx(2.5 * gpus) and mine["rate_rps"] == pytest.approx(5000)
    assert mine["cost_per_million_requests"] == pytest.approx(2.5 * gpus / (5000 * 3600) * 1e6, abs=1e-6)
    # each model on whole GPUs of its own: at least one per model, priced the same way
    assert excl["usage"][0]["used"] >= 2 and excl["cost_per_hour"] == pytest.approx(2.5 * excl["usage"][0]["used"])
    assert cost["exclusive_over_plan"] == pytest.approx(excl["cost_per_hour"] / mine["cost_per_hour"], abs=1e-4)
    lines = [line for line in r.stdout.splitlines() if line.startswith(("cost:", "exclusive"))]
    assert len(lines) == 3 and f"= {2.5 * gpus:g}/h" in lines[0] and "per million requests" in lines[0]
    assert f"{cost['exclusive_over_plan']:.2f}x the plan" in lines[2]
    # the same prices from a file, gpu-mig priced on its own: 4/h per MIG-cut GPU
    (tmp_path / "prices.yaml").write_text("gpu-mig: 4/hour\ncpu-core: 0.04\n")
    r = _run("plan", "--demand", str(files / "d.yaml"), "--profiles", str(files / "p.json"), "--devices", "mig:2",
             "--prices", str(tmp_path / "prices.yaml"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["cost"]["plan"]["cost_per_hour"] == pytest.approx(4.0 * gpus)


@pytest.mark.parametrize(
    "prices, needle",
    [
        ("gpu=-2/h", "prices: gpu=-2/h: a price must be >= 0"),
        ("gpu=2/day", "bad unit '/day'"),
        ("tpu=1", "unknown key 'tpu'"),
        ("cpu-core=0.04", "the plan uses gpu-mps devices; give a gpu= or gpu-mps= price"),
        ("/nonexistent/prices.yaml", "prices: cannot read /nonexistent/prices.yaml"),
    ],
)
def test_bad_prices_are_one_line_exit_2(files: Path, prices: str, needle: str) -> None:
    r = _run("plan", "--demand", str(files / "d.yaml"), "--profiles", str(files / "p.json"), "--devices", "gpu:2",
             "--prices", prices)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


@pytest.mark.parametrize("rate, extra, cores", [
    (50, [], {1, 2, 3}),                        # core 0 kept for the frontend, as `serve --policy` plans
    (100, ["--frontend-us", "9000"], {2, 3}),   # 0.9 cores of frontend load: two kept
    (320, [], {0, 1, 2, 3}),                    # the model needs every core: the frontend shares them
])
def test_cpu_plans_keep_cores_for_the_frontend(tmp_path: Path, rate: int, extra: list[str], cores: set[int]) -> None:
    from modelplex.planning.synthetic import cpu_profile

    (tmp_path / "p.json").write_text(json.dumps([cpu_profile("mobilenetv2", 8).to_json()]))
    (tmp_path / "d.yaml").write_text(f"mobilenetv2: {{rate_rps: {rate}, slo_ms: 200}}\n")
    out = tmp_path / "plan.json"
    r = _run("plan", "--demand", str(tmp_path / "d.yaml"), "--profiles", str(tmp_path / "p.json"), "--devices", "cpu:4",
             "--out", str(out), *extra)
    assert r.returncode == 0, r.stderr
    assert {c for s in json.loads(out.read_text())["slices"] for c in s["cpus"]} == cores
    kept = sorted({0, 1, 2, 3} - cores)
    assert (f"core(s) {kept} left to the frontend" if kept else "no core left to the frontend alone") in r.stdout


def test_a_negative_frontend_cost_is_one_line_exit_2(files: Path) -> None:
    r = _run("plan", "--demand", str(files / "d.yaml"), "--profiles", str(files / "p.json"), "--devices", "cpu:4",
             "--frontend-us", "-1")
    assert r.returncode == 2 and "--frontend-us must be 0 or more" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
