"""Parsing nvidia-smi text: pure functions, table-driven, with output samples as the tools print
them (NVIDIA's MIG user guide and public `nvidia-smi -L` listings)."""

from __future__ import annotations

import pytest

from modelplex.runtime.gpu_smi import (
    CommandResult, GpuInfo, parse_compute_instances, parse_gpu_instances, parse_gpu_query, parse_list, query_gpus,
)

from smi_samples import LGI, LCI, LIST_H100_3G, LIST_NO_MIG, LIST_OLD_DRIVER, LIST_TWO_GPUS, QUERY_H200, QUERY_NO_MIG


@pytest.mark.parametrize("text, want", [
    (QUERY_H200, [(0, "GPU-4f5d3b1e-31b8-9fb4-0ae3-c2c56c1e1d6b", "NVIDIA H200", 143771, False),
                  (1, "GPU-9e1d6a0c-8d2b-7c3e-5e71-6f3f2a2bd5a0", "NVIDIA H200", 143771, True)]),
    (QUERY_NO_MIG, [(0, "GPU-2927d07e-3fe9-7904-9e08-b08b82d9a37d", "NVIDIA GeForce RTX 2080 Ti", 11264, False)]),
    ("", []),
    ("No devices were found\n", []),
])
def test_gpu_query(text: str, want: list[tuple[int, str, str, int, bool]]) -> None:
    assert [(g.index, g.uuid, g.name, g.memory_mb, g.mig_enabled) for g in parse_gpu_query(text)] == want


@pytest.mark.parametrize("text, gpus, migs", [
    (LIST_TWO_GPUS, 2, [(0, "1g.10gb", 0, "MIG-a686709d-6dc2-542a-8851-0d2508448c10", 1, 10.0),
                        (0, "1g.10gb", 1, "MIG-53864714-0a66-5df2-9007-9268e30d9a72", 1, 10.0),
                        (1, "1g.10gb", 0, "MIG-d5a46a2e-1d77-575d-99e3-1f96c8555a2e", 1, 10.0)]),
    (LIST_H100_3G, 1, [(0, "3g.40gb", 0, "MIG-b3061c09-2a4c-5026-a575-79f86a5bb12c", 3, 40.0)]),
    (LIST_OLD_DRIVER, 1, [(0, "1g.5gb", 0, "MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/7/0", 1, 5.0)]),
    (LIST_NO_MIG, 1, []),
])
def test_list_with_mig_devices(text: str, gpus: int, migs: list[tuple[int, str, int, str, int, float]]) -> None:
    found_gpus, found = parse_list(text)
    assert len(found_gpus) == gpus
    assert [(m.gpu_index, m.profile, m.device, m.uuid, m.compute_slices, m.memory_gb) for m in found] == migs


@pytest.mark.parametrize("text, want", [
    (LGI, [(0, "1g.10gb", 19, 7, 0, 1), (0, "1g.10gb", 19, 13, 6, 1), (0, "3g.40gb", 9, 2, 4, 4)]),
    ("No GPU instances found: Not Found\n", []),
])
def test_gpu_instances(text: str, want: list[tuple[int, str, int, int, int, int]]) -> None:
    assert [(g.gpu_index, g.profile, g.profile_id, g.instance_id, g.start, g.size) for g in parse_gpu_instances(text)] == want


def test_compute_instances() -> None:
    assert parse_compute_instances(LCI) == [(0, 7, "1g.10gb", 0), (0, 10, "1g.10gb", 0)]


@pytest.mark.parametrize("result, note", [
    (CommandResult(127, "", "nvidia-smi is not installed (not on PATH)"), "no GPU: nvidia-smi is not installed (not on PATH)"),
    (CommandResult(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
                      "NVIDIA driver is installed and running.\n\n"),
     "no GPU: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest "
     "NVIDIA driver is installed and running."),
    (CommandResult(124, "", "nvidia-smi did not answer within 10 s"), "no GPU: nvidia-smi did not answer within 10 s"),
    (CommandResult(0, ""), "no GPU: nvidia-smi lists none"),
])
def test_no_gpu_is_one_line(result: CommandResult, note: str) -> None:
    # FAKED: only the subprocess runner (this machine has no GPU); the text is what the tool prints
    gpus, why = query_gpus(lambda argv, stdin, timeout_s, env: result)
    assert gpus == [] and why == note and "\n" not in why


def test_query_parses_through_the_runner() -> None:
    gpus, why = query_gpus(lambda argv, stdin, timeout_s, env: CommandResult(0, QUERY_H200))
    assert why == "" and gpus[0] == GpuInfo(0, "GPU-4f5d3b1e-31b8-9fb4-0ae3-c2c56c1e1d6b", "NVIDIA H200", 143771, "Disabled")
