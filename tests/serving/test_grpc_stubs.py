"""The committed gRPC stubs: the runtime check at import, and a server and a client on them under
the installed protobuf (the same test was run by hand under protobuf 5.26, 5.29, 6.33 and 7.36)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import __version__ as protobuf_version
from models import identity_fp32
from server import start_server

from modelplex.serving.grpc_gen import SUPPORTED_PROTOBUF, protobuf_version_problem

SUPPORT = Path(__file__).parents[1] / "support"


@pytest.mark.parametrize("version", ["5.26.1", "5.29.6", "6.30.0", "6.33.6", "7.36.2", "7.99.0rc1"])
def test_supported_runtimes_pass_the_check(version: str) -> None:
    assert protobuf_version_problem(version) is None


@pytest.mark.parametrize("version", ["4.25.9", "5.26.0", "5.25.3", "3.20.3", "8.0.0", "banana"])
def test_other_runtimes_get_a_message_naming_both_versions(version: str) -> None:
    problem = protobuf_version_problem(version)
    assert problem is not None and version in problem
    if version[0].isdigit():
        assert SUPPORTED_PROTOBUF in problem


def test_the_installed_runtime_is_supported() -> None:
    assert protobuf_version_problem(protobuf_version) is None


@pytest.mark.slow
def test_a_client_on_the_stubs_talks_to_a_server_on_them(tmp_path: Path) -> None:
    identity_fp32(tmp_path / "repo" / "idf" / "1" / "model.onnx", width=3)
    srv = start_server(tmp_path / "repo", tmp_path / "state")
    try:
        out = subprocess.run([sys.executable, str(SUPPORT / "grpc_probe.py"), srv.grpc_url, "idf"],
                             capture_output=True, text=True, timeout=60)
    finally:
        srv.stop()
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"protobuf": protobuf_version, "server": "modelplex", "config_name": "idf", "echo": True}
