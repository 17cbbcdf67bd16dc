"""GPU slices: NVIDIA MPS shares for worker processes.

A GPU slice is a share of one GPU's SMs set with MPS: the server starts (or finds) an MPS control
daemon, and each worker process of a slice gets CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = its share.
Workers then run ONNX Runtime's CUDA provider. Everything here imports and runs its logic without
a GPU; only `MpsDaemon.ensure_running` needs `nvidia-cuda-mps-control`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.errors import UnavailableError

log = logging.getLogger(__name__)


def gpu_names(timeout_s: float = 10.0) -> list[str]:
    """Names of the GPUs nvidia-smi lists; empty without a GPU or driver (not an error)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=timeout_s, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi lists no GPUs: %s", exc)
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def gpu_devices(names: list[str]) -> list[DeviceSpec]:
    """One MPS-sliceable device per GPU (slice sizes in % of SMs)."""
    return [DeviceSpec(f"gpu{i}", DeviceKind.GPU_MPS, 100, name) for i, name in enumerate(names)]


@dataclass(frozen=True)
class MpsDaemon:
    """Where the MPS control daemon keeps its pipes and logs (one per server)."""

    pipe_dir: Path  # CUDA_MPS_PIPE_DIRECTORY
    log_dir: Path  # CUDA_MPS_LOG_DIRECTORY

    @property
    def env(self) -> dict[str, str]:
        return {"CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir)}

    def running(self) -> bool:
        """A control daemon answers on this pipe directory (its `control` pipe exists)."""
        return (self.pipe_dir / "control").exists()

    def start_command(self) -> list[str]:
        return ["nvidia-cuda-mps-control", "-d"]

    def ensure_running(self) -> bool:
        """Start the daemon unless one already runs here; True when this call started it."""
        if self.running():
            return False
        if shutil.which("nvidia-cuda-mps-control") is None:
            raise UnavailableError("GPU slices need NVIDIA MPS: nvidia-cuda-mps-control is not installed")
        self.pipe_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(self.start_command(), env=dict(os.environ, **self.env), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise UnavailableError(f"cannot start the MPS control daemon: {result.stderr.strip() or result.returncode}")
        log.info("started the MPS control daemon (pipes in %s, logs in %s)", self.pipe_dir, self.log_dir)
        return True

    def stop(self) -> None:
        """Ask the daemon to quit (it stops once its clients are gone)."""
        if self.running() and shutil.which("nvidia-cuda-mps-control") is not None:
            log.info("stopping the MPS control daemon (pipes in %s)", self.pipe_dir)
            subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", env=dict(os.environ, **self.env),
                           capture_output=True, text=True, check=False)


def worker_env(slice_spec: SliceSpec, daemon: MpsDaemon | None) -> dict[str, str]:
    """Environment of a worker on `slice_spec`: for a GPU slice, its GPU and its MPS share."""
    if slice_spec.cpus or not slice_spec.device_id.startswith("gpu"):
        return {}
    if not 0 < slice_spec.size <= 100:
        raise ValueError(f"GPU slice of {slice_spec.size} % is not a share of one GPU")
    env = {
        "CUDA_VISIBLE_DEVICES": slice_spec.device_id.removeprefix("gpu"),
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(slice_spec.size),
    }
    if daemon is not None:
        env.update(daemon.env)
    return env
