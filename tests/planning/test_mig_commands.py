"""The nvidia-smi mig commands printed for a planned layout (never run by modelplex)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.planning.mig import mig_commands, model_key_for


def _dev(i: int, key: str) -> DeviceSpec:
    return DeviceSpec(f"gpu{i}", DeviceKind.GPU_MIG, 7, "", 0, key)


@pytest.mark.parametrize("key, placed, command", [
    ("h200-141gb", [(3, 4), (4, 0)], "nvidia-smi mig -i 0 -cgi 4g.71gb,3g.71gb -C"),
    ("h200-141gb", [(7, 0)], "nvidia-smi mig -i 0 -cgi 7g.141gb -C"),
    ("h200-141gb", [(1, 6), (2, 4), (3, 0)], "nvidia-smi mig -i 0 -cgi 3g.71gb,2g.35gb,1g.18gb -C"),
    ("h100-80gb", [(1, 0), (1, 1), (2, 2), (3, 4)], "nvidia-smi mig -i 0 -cgi 1g.10gb,1g.10gb,2g.20gb,3g.40gb -C"),
    ("a100-40gb", [(3, 0), (3, 4)], "nvidia-smi mig -i 0 -cgi 3g.20gb,3g.20gb -C"),
])
def test_commands_per_gpu_model(key: str, placed: list[tuple[int, int]], command: str) -> None:
    lines = mig_commands([_dev(0, key)], {"gpu0": placed})
    assert command in lines
    assert all(line.startswith(("#", "nvidia-smi mig -i 0")) for line in lines)
    assert not any("-mig 1" in line and not line.startswith("#") for line in lines)  # never changes MIG mode


def test_second_gpu_gets_its_index_and_bad_layouts_are_refused() -> None:
    lines = mig_commands([_dev(0, "h100-80gb"), _dev(1, "h100-80gb")], {"gpu1": [(7, 0)]})
    assert "nvidia-smi mig -i 1 -cgi 7g.80gb -C" in lines and not any("-i 0" in line for line in lines)
    with pytest.raises(InvalidArgumentError, match="overlaps"):
        mig_commands([_dev(0, "h100-80gb")], {"gpu0": [(4, 0), (3, 0)]})


@pytest.mark.parametrize("name, mb, key", [("NVIDIA H200", 143771, "h200-141gb"), ("NVIDIA H100 80GB HBM3", 81559, "h100-80gb"),
                                           ("NVIDIA A100-SXM4-40GB", 40960, "a100-40gb"), ("NVIDIA A100-SXM4-80GB", 81920, "a100-80gb"),
                                           ("NVIDIA L4", 23034, "")])
def test_model_key_from_nvidia_smi_name(name: str, mb: int, key: str) -> None:
    assert model_key_for(name, mb) == key


def test_plan_prints_mig_commands(tmp_path: Path) -> None:
    import json

    from modelplex.planning.synthetic import gpu_profiles

    (tmp_path / "p.json").write_text(json.dumps([p.to_json() for p in gpu_profiles(["resnet50", "mobilenetv2"])]))
    (tmp_path / "d.yaml").write_text("models:\n  - {model: resnet50, rate_rps: 600, slo_ms: 108}\n"
                                     "  - {model: mobilenetv2, rate_rps: 900, slo_ms: 64}\n")
    r = subprocess.run([sys.executable, "-m", "modelplex.cli_plan", "plan", "--demand", str(tmp_path / "d.yaml"), "--profiles",
                        str(tmp_path / "p.json"), "--devices", "mig:1@h200-141gb", "--print-mig-commands"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cmds = [line for line in r.stdout.splitlines() if line.startswith("nvidia-smi mig -i 0 -cgi ")]
    assert len(cmds) == 1 and cmds[0].endswith(" -C") and "gb" in cmds[0]
