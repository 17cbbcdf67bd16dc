"""`modelplex status` text with the GPU sharing probe in the server's /v2/plan document."""

from __future__ import annotations

from modelplex.serving.status_view import format_status

GPUS = {
    "note": "", "mps": "available: daemon answers in /tmp/modelplex-mps-x/pipe (started by this server)",
    "green": "available", "driver_version": 13000,
    "gpus": [{"index": 0, "uuid": "GPU-4f5d", "name": "NVIDIA H200", "memory_mb": 143771, "mig_mode": "Disabled",
              "mig_devices": [], "mechanism": "mps"},
             {"index": 1, "uuid": "GPU-9e1d", "name": "NVIDIA H200", "memory_mb": 143771, "mig_mode": "Enabled",
              "mig_devices": [{"uuid": "MIG-b306", "profile": "3g.71gb", "device": 0}], "mechanism": "mig+mps"}],
    "devices": [{"device_id": "gpu0", "uuid": "GPU-4f5d", "mechanism": "mps", "memory_mb": 143771},
                {"device_id": "gpu1-mig0", "uuid": "MIG-b306", "mechanism": "mig+mps", "memory_mb": 72704}],
}


def test_status_shows_each_gpu_and_its_mechanism() -> None:
    text = format_status({"plan": None, "controller": None, "slices": [], "models": {}, "gpus": GPUS})
    assert "GPU sharing: MPS available: daemon answers" in text and "green contexts available" in text
    assert "GPU 0 NVIDIA H200 GPU-4f5d 143771 MiB, MIG Disabled: mps" in text
    assert "GPU 1 NVIDIA H200 GPU-9e1d 143771 MiB, MIG Enabled (3g.71gb): mig+mps" in text
    assert "gpu1-mig0 MIG-b306 72704 MiB: mig+mps" in text


def test_status_without_gpu_is_one_line_and_cpu_servers_show_nothing() -> None:
    text = format_status({"plan": None, "slices": [], "models": {}, "gpus": {"note": "no GPU: nvidia-smi is not installed"}})
    assert [line for line in text.splitlines() if "GPU" in line] == ["GPUs: no GPU: nvidia-smi is not installed"]
    assert "GPU" not in format_status({"plan": None, "slices": [], "models": {}, "gpus": None})
