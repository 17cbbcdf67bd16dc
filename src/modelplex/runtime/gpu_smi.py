"""What nvidia-smi says about this host's GPUs: the commands, run through one replaceable runner,
and pure parsers of their text (tested with real output samples; see tests/runtime/test_gpu_smi.py).

modelplex only *reads* here: it never changes MIG mode or layout.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

GPU_QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name,memory.total,mig.mode.current", "--format=csv,noheader"]
LIST_GPUS = ["nvidia-smi", "-L"]
LIST_GPU_INSTANCES = ["nvidia-smi", "mig", "-lgi"]
LIST_COMPUTE_INSTANCES = ["nvidia-smi", "mig", "-lci"]


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it ended (127: not installed, 124: timed out)."""

    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        """One line saying why the command failed."""
        text = (self.stderr or self.stdout).strip().splitlines()
        return text[0].strip() if text else f"exit code {self.returncode}"


# argv, text sent to stdin (None: none), timeout in seconds, extra environment -> result
Runner = Callable[[Sequence[str], str | None, float, Mapping[str, str] | None], CommandResult]


def run_command(argv: Sequence[str], stdin: str | None = None, timeout_s: float = 10.0,
                env: Mapping[str, str] | None = None) -> CommandResult:
    """The real runner: a subprocess with a timeout; never raises for a missing or hung tool."""
    import os

    exe = shutil.which(argv[0])
    if exe is None:
        return CommandResult(127, "", f"{argv[0]} is not installed (not on PATH)")
    try:
        done = subprocess.run([exe, *argv[1:]], input=stdin, capture_output=True, text=True, timeout=timeout_s,
                              env=dict(os.environ, **env) if env else None, check=False)
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]} did not answer within {timeout_s:.0f} s")
    except OSError as exc:
        return CommandResult(126, "", f"{argv[0]} cannot run: {exc.strerror or exc}")
    return CommandResult(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class GpuInfo:
    """One physical GPU as `nvidia-smi --query-gpu` lists it."""

    index: int  # nvidia-smi index (PCI bus order)
    uuid: str  # "GPU-..." : how workers are addressed
    name: str  # e.g. "NVIDIA H200"
    memory_mb: int  # total device memory (MiB)
    mig_mode: str  # "Enabled", "Disabled" or "[N/A]" (not MIG-capable)

    @property
    def mig_enabled(self) -> bool:
        return self.mig_mode.strip().lower() == "enabled"


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a compute instance a process can use) as `nvidia-smi -L` lists it."""

    gpu_index: int  # the physical GPU it is cut from
    profile: str  # e.g. "3g.40gb" (GPU instance profile name)
    device: int  # MIG device number within its GPU
    uuid: str  # "MIG-..." : how workers are addressed

    @property
    def compute_slices(self) -> int:
        """GPCs of the instance: the number before "g" (3 in "3g.40gb")."""
        m = re.match(r"(\d+)g", self.profile)
        return int(m.group(1)) if m else 0

    @property
    def memory_gb(self) -> float:
        m = re.search(r"\.(\d+)gb", self.profile)
        return float(m.group(1)) if m else 0.0


@dataclass(frozen=True)
class GpuInstance:
    """One row of `nvidia-smi mig -lgi`."""

    gpu_index: int
    profile: str  # e.g. "1g.10gb"
    profile_id: int
    instance_id: int
    start: int  # first memory slice
    size: int  # memory slices occupied


def _mib(text: str) -> int:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else 0


def parse_gpu_query(text: str) -> list[GpuInfo]:
    """Rows of `nvidia-smi --query-gpu=index,uuid,name,memory.total,mig.mode.current
    --format=csv,noheader`, e.g. "0, GPU-5b0c..., NVIDIA H200, 143771 MiB, Disabled"."""
    out = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        mode = parts[4] if len(parts) > 4 else "[N/A]"
        out.append(GpuInfo(int(parts[0]), parts[1], parts[2], _mib(parts[3]), mode))
    return out


_GPU_LINE = re.compile(r"^GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*(GPU-[0-9A-Fa-f-]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*(MIG-[^)\s]+)\)")


def parse_list(text: str) -> tuple[list[tuple[int, str, str]], list[MigDevice]]:
    """`nvidia-smi -L`: the GPUs (index, name, uuid) and the MIG devices under each.
    Handles both MIG UUID forms ("MIG-<uuid>" and the older "MIG-GPU-<uuid>/gi/ci")."""
    gpus: list[tuple[int, str, str]] = []
    migs: list[MigDevice] = []
    for line in text.splitlines():
        g = _GPU_LINE.match(line)
        if g:
            gpus.append((int(g.group(1)), g.group(2), g.group(3)))
            continue
        m = _MIG_LINE.match(line)
        if m and gpus:
            migs.append(MigDevice(gpus[-1][0], m.group(1), int(m.group(2)), m.group(3)))
    return gpus, migs


_LGI_ROW = re.compile(r"^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|")


def parse_gpu_instances(text: str) -> list[GpuInstance]:
    """Rows of `nvidia-smi mig -lgi` ("|   0  MIG 1g.10gb   19   9   2:1   |"); empty when the
    tool says "No GPU instances found"."""
    out = []
    for line in text.splitlines():
        m = _LGI_ROW.match(line)
        if m:
            out.append(GpuInstance(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6))))
    return out


_LCI_ROW = re.compile(r"^\|\s*(\d+)\s+(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+):(\d+)\s*\|")


def parse_compute_instances(text: str) -> list[tuple[int, int, str, int]]:
    """Rows of `nvidia-smi mig -lci`: (gpu, GPU instance id, profile name, compute instance id)."""
    out = []
    for line in text.splitlines():
        m = _LCI_ROW.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(5))))
    return out


def query_gpus(runner: Runner = run_command) -> tuple[list[GpuInfo], str]:
    """This host's GPUs, or none and one line saying why (no driver, no nvidia-smi, no GPU)."""
    res = runner(GPU_QUERY, None, 10.0, None)
    if not res.ok:
        return [], f"no GPU: {res.why()}"
    gpus = parse_gpu_query(res.stdout)
    return gpus, "" if gpus else "no GPU: nvidia-smi lists none"


def list_mig_devices(runner: Runner = run_command) -> list[MigDevice]:
    """MIG devices that exist now (empty without MIG or when nvidia-smi -L fails)."""
    res = runner(LIST_GPUS, None, 10.0, None)
    if not res.ok:
        log.debug("nvidia-smi -L failed: %s", res.why())
        return []
    return parse_list(res.stdout)[1]
