"""GPU slices without a GPU: the MPS share each worker gets, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelplex.core.devices import DeviceKind, SliceSpec
from modelplex.core.errors import UnavailableError
from modelplex.runtime.gpu import MpsDaemon, gpu_devices, gpu_names, worker_env


def test_gpu_slice_gets_its_mps_share(tmp_path: Path) -> None:
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log")
    env = worker_env(SliceSpec("gpu1", 40), daemon)
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "40"
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == str(tmp_path / "pipe")


def test_cpu_slice_gets_no_gpu_environment() -> None:
    assert worker_env(SliceSpec("cpu0", 2, (0, 1)), None) == {}


def test_share_above_a_whole_gpu_is_refused() -> None:
    with pytest.raises(ValueError):
        worker_env(SliceSpec("gpu0", 150), None)


def test_devices_from_names() -> None:
    devices = gpu_devices(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"])
    assert [d.device_id for d in devices] == ["gpu0", "gpu1"]
    assert all(d.kind is DeviceKind.GPU_MPS and d.capacity == 100 for d in devices)


@pytest.mark.skipif(shutil.which("nvidia-cuda-mps-control") is not None, reason="MPS is installed here")
def test_daemon_without_mps_is_a_clear_error(tmp_path: Path) -> None:
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log")
    assert not daemon.running()
    with pytest.raises(UnavailableError, match="nvidia-cuda-mps-control"):
        daemon.ensure_running()


@pytest.mark.skipif(bool(gpu_names()), reason="a GPU is present")
def test_serve_gpus_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    from modelplex.repository.examples import write_examples

    write_examples(tmp_path / "m")
    out = subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "serve", "--repository", str(tmp_path / "m"), "--policy", "elastic",
         "--gpus", "--state-dir", str(tmp_path / "s"), "--http-port", "0", "--grpc-port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no GPU found" in out.stderr
