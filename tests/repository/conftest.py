"""Shared fixtures: one generated example repository per test session (it takes ~0.2 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelplex  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime loads)
from modelplex.repository.examples import write_examples


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_examples(root)
    return root
