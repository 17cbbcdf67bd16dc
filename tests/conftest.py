"""Shared fixtures: a test model repository and a live server on it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).parent / "support"))

import models  # noqa: E402
from server import RunningServer, start_server  # noqa: E402


@pytest.fixture(scope="session")
def test_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Example models plus a BYTES model and a slow model with a one-row batch."""
    from modelplex.repository.examples import write_examples

    root = tmp_path_factory.mktemp("repo")
    write_examples(root)
    models.bytes_identity(root / "bytes_identity" / "1" / "model.onnx")
    models.slow_conv(root / "slow" / "1" / "model.onnx")
    models.add_config_yaml(root / "slow", "max_batch_size: 1\n")
    broken = root / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"this is not an onnx file")
    return root


@pytest.fixture(scope="session")
def server(test_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    state = tmp_path_factory.mktemp("state")
    srv = start_server(test_repository, state, ["--max-body-mb", "4"])
    yield srv
    srv.stop()
