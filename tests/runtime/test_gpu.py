"""GPU slices without a GPU: the environment each worker gets (UUIDs, MPS share and pinned memory,
green-context SMs), the probe's choice per GPU, MPS daemon ownership, and clear errors.

FAKED here: only the subprocess runner for nvidia-smi / nvidia-cuda-mps-control text
(tests/support/gpu_tools.ScriptedTools), since this machine has no GPU; and the green-context
probe's answer (GreenProbe values), which needs a driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelplex.core.devices import DeviceKind, SliceSpec
from modelplex.core.errors import InvalidArgumentError, UnavailableError
from modelplex.runtime.gpu import GpuShares, GpuTarget, gpu_devices, pinned_mem_limit, worker_env
from modelplex.runtime.gpu_green import GreenProbe, green_sm_count
from modelplex.runtime.gpu_mps import MpsDaemon, MpsWatch, parse_server_list
from modelplex.runtime.gpu_probe import format_gpu_status, open_gpu_shares
from modelplex.runtime.gpu_smi import CommandResult, GPU_QUERY, LIST_GPUS
from gpu_tools import ScriptedTools
from smi_samples import LIST_H100_3G, QUERY_H200

UUID = "GPU-4f5d3b1e-31b8-9fb4-0ae3-c2c56c1e1d6b"
NO_GREEN = GreenProbe(False, "cuda-python is not installed")
GREEN_OK = GreenProbe(True, "", 13000, {UUID: 132, "GPU-9e1d6a0c-8d2b-7c3e-5e71-6f3f2a2bd5a0": 132})


def _shares(mechanism: str, daemon: MpsDaemon | None = None) -> GpuShares:
    return GpuShares({"gpu0": GpuTarget("gpu0", UUID, "NVIDIA H200", mechanism, 143771, 132, "h200-141gb", daemon)})


@pytest.mark.parametrize("mechanism, size, want", [
    ("mps", 40, {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "40", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=57508M",
                 "MODELPLEX_GPU_MEM_MB": "57508"}),
    ("mps", 100, {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "100", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=143771M"}),
    ("green", 50, {"MODELPLEX_GREEN_SMS": "64", "MODELPLEX_GPU_MEM_MB": "71885"}),
    ("green", 20, {"MODELPLEX_GREEN_SMS": "24"}),
    ("whole", 100, {"MODELPLEX_GPU_MECHANISM": "whole"}),
])
def test_worker_env_per_mechanism(tmp_path: Path, mechanism: str, size: int, want: dict[str, str]) -> None:
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log") if mechanism == "mps" else None
    env = worker_env(SliceSpec("gpu0", size), _shares(mechanism, daemon))
    assert env["CUDA_VISIBLE_DEVICES"] == UUID and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert {k: env[k] for k in want} == want
    assert ("CUDA_MPS_PIPE_DIRECTORY" in env) == (mechanism == "mps")
    assert ("MODELPLEX_GREEN_SMS" in env) == (mechanism == "green" and size < 100)


@pytest.mark.parametrize("spec, mechanism, needle", [
    (SliceSpec("gpu0", 150), "mps", "not a share of one GPU"),
    (SliceSpec("gpu0", 0), "mps", "not a share of one GPU"),
    (SliceSpec("gpu3", 50), "mps", "no such GPU device"),
    (SliceSpec("gpu0", 50), "whole", "cannot be shared"),
    (SliceSpec("gpu0", 50), "mig", "cannot be shared"),
])
def test_worker_env_refuses(spec: SliceSpec, mechanism: str, needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle):
        worker_env(spec, _shares(mechanism))


def test_cpu_slice_gets_no_gpu_environment() -> None:
    assert worker_env(SliceSpec("cpu0", 2, (0, 1)), None) == {}


@pytest.mark.parametrize("mb, text", [(1024, "0=1024M"), (57508, "0=57508M")])
def test_pinned_memory_limit_strings(mb: int, text: str) -> None:
    assert pinned_mem_limit(mb) == text


@pytest.mark.parametrize("pct, sms, cc, want", [(50, 132, 9, 64), (20, 132, 9, 24), (1, 132, 9, 8), (100, 132, 9, 128),
                                                 (50, 108, 8, 54), (1, 108, 8, 4)])
def test_green_sm_counts_are_whole_groups(pct: int, sms: int, cc: int, want: int) -> None:
    assert green_sm_count(pct, sms, cc) == want


def test_devices_from_names() -> None:
    devices = gpu_devices(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"])
    assert [d.device_id for d in devices] == ["gpu0", "gpu1"]
    assert all(d.kind is DeviceKind.GPU_MPS and d.capacity == 100 for d in devices)


def _tools(query: str = QUERY_H200, listing: str = "", mps: bool = True) -> ScriptedTools:
    t = ScriptedTools(mps_installed=mps)
    t.answers[" ".join(GPU_QUERY)] = CommandResult(0, query)
    t.answers[" ".join(LIST_GPUS)] = CommandResult(0, listing)
    return t


def test_probe_prefers_mps_and_starts_a_private_daemon_it_then_stops() -> None:
    tools = _tools(QUERY_H200.splitlines()[0] + "\n")
    shares = open_gpu_shares(tools, lambda: GREEN_OK)
    t = shares.targets["gpu0"]
    assert t.mechanism == "mps" and t.uuid == UUID and t.gpu_model == "h200-141gb" and t.daemon is not None
    assert t.daemon.owned and str(t.daemon.pipe_dir).startswith("/tmp/") and t.daemon.pipe_dir.is_dir()
    assert shares.status()["mps"].startswith("available: daemon answers") and shares.status()["green"] == "available"
    shares.close()
    assert tools.mps_commands()[-1] == "quit\n" and not t.daemon.pipe_dir.exists()


def test_daemon_found_running_is_never_stopped(tmp_path: Path) -> None:
    tools = ScriptedTools()
    tools.daemon_up.add(str(tmp_path / "pipe"))  # someone else's daemon answers there
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log", tools)
    assert daemon.ensure_running() is False and not daemon.owned
    daemon.stop()
    assert "quit\n" not in tools.mps_commands() and daemon.running()


def test_a_pipe_file_alone_is_not_a_running_daemon(tmp_path: Path) -> None:
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "control").touch()
    assert not MpsDaemon(tmp_path / "pipe", tmp_path / "log", ScriptedTools()).running()


def test_without_mps_green_contexts_then_whole_gpus() -> None:
    green = open_gpu_shares(_tools(mps=False), lambda: GREEN_OK)
    assert [t.mechanism for t in green.targets.values()] == ["green"]  # GPU 1: MIG on, no instance made -> no device
    assert [g["mechanism"] for g in green.status()["gpus"]] == ["green", "none"]
    whole = open_gpu_shares(_tools(QUERY_H200.splitlines()[0] + "\n", mps=False), lambda: NO_GREEN)
    assert whole.targets["gpu0"].mechanism == "whole"
    assert whole.status()["green"] == "not available: cuda-python is not installed"


def test_mig_instances_are_devices_by_mig_uuid_with_a_daemon_each() -> None:
    query = "0, GPU-950792bf-a01c-3f1a-e122-3473e67f54b2, NVIDIA H100 80GB HBM3, 81559 MiB, Enabled\n"
    shares = open_gpu_shares(_tools(query, LIST_H100_3G), lambda: NO_GREEN)
    t = shares.targets["gpu0-mig0"]
    assert (t.uuid, t.mechanism, t.memory_mb) == ("MIG-b3061c09-2a4c-5026-a575-79f86a5bb12c", "mig+mps", 40960)
    assert t.daemon is not None and t.daemon.visible == t.uuid
    env = worker_env(SliceSpec("gpu0-mig0", 50), shares)
    assert env["CUDA_VISIBLE_DEVICES"] == t.uuid and env["CUDA_MPS_PIPE_DIRECTORY"] == str(t.daemon.pipe_dir)
    lines = format_gpu_status(shares.status())
    assert any("MIG Enabled (3g.40gb)" in line for line in lines) and any("gpu0-mig0" in line for line in lines)
    shares.close()


def test_no_gpu_is_one_status_line() -> None:
    shares = open_gpu_shares(ScriptedTools(), lambda: NO_GREEN)
    assert shares.targets == {}
    assert format_gpu_status(shares.status()) == ["GPUs: no GPU: nvidia-smi is not installed (not on PATH)"]


def test_mps_daemon_that_cannot_start_falls_back() -> None:
    tools = _tools(QUERY_H200.splitlines()[0] + "\n")
    tools.answers["nvidia-cuda-mps-control -d"] = CommandResult(1, "", "boom")

    def broken(argv: object, stdin: str | None, timeout_s: float, env: object) -> CommandResult:
        if list(argv) == ["nvidia-cuda-mps-control", "-d"]:  # type: ignore[call-overload]
            return CommandResult(1, "", "An instance of this daemon is already running")
        return tools(argv, stdin, timeout_s, env)  # type: ignore[arg-type]

    shares = open_gpu_shares(broken, lambda: GREEN_OK)
    assert shares.targets["gpu0"].mechanism == "green" and shares.targets["gpu0"].daemon is None
    assert "already running" in shares.status()["mps"]


def test_watch_reports_a_server_fault(tmp_path: Path) -> None:
    tools = ScriptedTools()
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log", tools)
    watch = MpsWatch(daemon)
    assert watch.check() is None  # no daemon yet: nothing to report
    daemon.ensure_running()
    pipe = str(tmp_path / "pipe")
    tools.servers[pipe] = [4242]
    assert watch.check() is None
    tools.servers[pipe] = [4343]  # the server died and another took its place
    assert "4242" in (watch.check() or "")
    assert watch.check() is None
    tools.daemon_up.discard(pipe)
    assert "stopped answering" in (watch.check() or "")


def test_server_list_text() -> None:
    assert parse_server_list("1234\n5678\n") == [1234, 5678] and parse_server_list("") == []


def test_daemon_without_mps_is_a_clear_error(tmp_path: Path) -> None:
    daemon = MpsDaemon(tmp_path / "pipe", tmp_path / "log", ScriptedTools(mps_installed=False))
    assert not daemon.running()
    with pytest.raises(UnavailableError, match="nvidia-cuda-mps-control"):
        daemon.ensure_running()


def test_serve_gpus_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    from modelplex.repository.examples import write_examples

    write_examples(tmp_path / "m")
    (tmp_path / "bin").mkdir()  # a PATH without nvidia-smi: the same on a GPU host
    out = subprocess.run(
        [sys.executable, "-m", "modelplex.cli", "serve", "--repository", str(tmp_path / "m"), "--policy", "elastic",
         "--gpus", "--state-dir", str(tmp_path / "s"), "--http-port", "0", "--grpc-port", "0"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PATH=str(tmp_path / "bin")),
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no GPU" in out.stderr, out.stderr


def test_without_shares_a_gpu_slice_gets_its_device_by_index_only() -> None:
    assert worker_env(SliceSpec("gpu1", 50), None) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}
