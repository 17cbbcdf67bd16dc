"""The profile command end to end: real worker processes on the tiny model."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from modelplex.core.profile import Profile
from modelplex.profiling.latency_model import is_non_decreasing_in_batch
from modelplex.profiling.storage import ProfileStore, read_export
from modelplex.repository.store import Registry

Cli = Callable[..., subprocess.CompletedProcess[str]]
Profiled = tuple[Path, Path, subprocess.CompletedProcess[str]]


def test_profile_has_expected_shape(profiled: Profiled) -> None:
    state, out, proc = profiled
    assert proc.returncode == 0, proc.stderr
    [prof] = read_export(out)
    # batch 64 > max_batch_size 16: skipped; the others measured on the 1-core slice
    assert sorted((p.slice_size, p.batch) for p in prof.points) == [(1, 1), (1, 2), (1, 4), (1, 16)]
    assert all(p.samples == 15 and 0 < p.p50_ms <= p.p99_ms and p.throughput_rps > 0 for p in prof.points)
    assert prof.memory_mb > 0 and prof.load_s > 0
    assert prof.features["weight_bytes"] > 2 * 256 * 256 * 4 * 0.9
    assert is_non_decreasing_in_batch(prof)
    p50 = {p.batch: p.p50_ms for p in prof.points}
    assert p50[16] > p50[1]  # 16x the work is never faster, even on a noisy shared host
    assert prof.latency_ms(1, 8) <= prof.latency_ms(1, 16)
    doc = json.loads(out.read_text())
    assert doc["format"] == "modelplex-profiles/1" and doc["cores"] >= 1
    from modelplex.cli_profile import gpu_status
    from modelplex.profiling.hardware import detect_host

    assert doc["gpu"] == gpu_status(detect_host())  # what this host's GPUs (or their absence) give
    assert "latency model, leave-one-out" in proc.stdout


def test_gpu_status_names_why_gpus_were_not_measured() -> None:
    from modelplex.cli_profile import gpu_status
    from modelplex.profiling.backends import CpuBackend, GpuMpsBackend
    from modelplex.profiling.hardware import HostInfo

    no_gpu = HostInfo(cpu_model="cpu", cpus=(0,))
    assert gpu_status(no_gpu) == "not measured (no nvidia-smi / no GPU on this host)"
    h200 = HostInfo(cpu_model="cpu", cpus=(0,), gpu_names=("NVIDIA H200",))
    assert gpu_status(h200, CpuBackend(h200)) == "not measured (NVIDIA H200 present: run `modelplex profile --gpus` for MPS shares)"
    assert gpu_status(h200, GpuMpsBackend(h200)).startswith("measured (NVIDIA H200: MPS shares")


def test_export_import_round_trips(profiled: Profiled, cli: Cli, tmp_path: Path) -> None:
    state, out, _ = profiled
    [exported] = read_export(out)
    proc = cli("--import", str(out), "--state-dir", str(tmp_path / "other"))
    assert proc.returncode == 0, proc.stderr
    with Registry(tmp_path / "other") as reg:
        back = ProfileStore(reg).get("tiny", exported.hardware, "cpu")
    assert back == exported
    assert Profile.from_json(json.loads(json.dumps(back.to_json()))) == back


def test_resume_skips_known_points(profiled: Profiled, tiny_repo: Path, cli: Cli) -> None:
    state, out, _ = profiled
    [before] = read_export(out)
    # 1,2,4,16 are known; 8 is new, 64 is above max_batch_size
    proc = cli("--repository", str(tiny_repo), "--batches", "1,2,4,8,16,64", "--slices", "1",
               "--repeats", "5", "--state-dir", str(state), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "1 point(s) to measure, 4 already in the registry" in proc.stderr
    with Registry(state) as reg:
        after = ProfileStore(reg).get("tiny", before.hardware, "cpu")
    assert after is not None
    old = {(p.slice_size, p.batch): p for p in before.points}
    new = {(p.slice_size, p.batch): p for p in after.points}
    assert set(new) == set(old) | {(1, 8)}
    assert all(new[k] == old[k] for k in old)  # known points were not re-measured
    assert new[(1, 8)].samples == 5


def test_force_remeasures(profiled: Profiled, tiny_repo: Path, cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ["--repository", str(tiny_repo), "--batches", "1", "--slices", "1", "--repeats", "3",
            "--state-dir", str(state), "--quiet"]
    assert cli(*args).returncode == 0
    again = cli(*args, "--force")
    assert again.returncode == 0, again.stderr
    assert "1 point(s) to measure, 0 already" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "nosuchmodel"], "unknown model(s) nosuchmodel"),
        (["--batches", ""], "--batches is empty"),
        (["--batches", "1,x"], "not a list of integers"),
        (["--slices", "4096"], "slice size 4096 is not possible on this host"),
        (["--state-dir", "{file}/sub"], "is not writable"),
    ],
)
def test_bad_arguments_give_one_line_errors(tiny_repo: Path, cli: Cli, tmp_path: Path,
                                            args: list[str], message: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = [a.replace("{file}", str(blocker)) for a in args]
    if "--state-dir" not in args:
        args += ["--state-dir", str(tmp_path / "state")]
    proc = cli("--repository", str(tiny_repo), "--repeats", "3", "--quiet", *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("modelplex: error: ") and message in lines[0]


def test_missing_repository_and_bad_import(cli: Cli, tmp_path: Path) -> None:
    for args in (["--repository", str(tmp_path / "none")], ["--import", str(tmp_path / "none.json")]):
        proc = cli(*args, "--state-dir", str(tmp_path / "s"))
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_pairs_measure_both_directions(tiny_repo: Path) -> None:
    from modelplex.profiling.interference import F1, F2
    from modelplex.profiling.pairs import PairSettings, measure_pairs
    from modelplex.repository.folders import scan_repository

    configs, _ = scan_repository(tiny_repo)
    obs = measure_pairs(configs, PairSettings(batches=(4,), duration_s=0.1, min_runs=3))
    assert [(o.model_a, o.model_b, o.batch_a) for o in obs] == [("tiny", "tiny", 4)] * 2
    assert all(o.solo_ms > 0 and o.paired_ms > 0 and o.features_a[F2] >= o.features_a[F1] > 0 for o in obs)
