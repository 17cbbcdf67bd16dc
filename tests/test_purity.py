"""The pure core (planning, batching, selection, rate estimation, re-planning and autoscaling
decisions, shared types) has no I/O: no clocks, sockets, event loops, processes or ONNX Runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import modelplex

FORBIDDEN = {"asyncio", "onnxruntime", "socket", "time", "random", "threading", "subprocess", "urllib", "sqlite3"}
ROOT = Path(modelplex.__file__).parent
PURE = [
    *sorted((ROOT / "planning").glob("*.py")),
    *sorted((ROOT / "core").glob("*.py")),
    ROOT / "serving" / "batching.py",
    ROOT / "serving" / "latency.py",
    ROOT / "control" / "rates.py",
    ROOT / "control" / "controller.py",
    ROOT / "control" / "attainment.py",
    ROOT / "control" / "autoscale.py",
]


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_nothing_impure(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.slow
def test_package_type_checks_strictly() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
