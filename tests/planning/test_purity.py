"""The planning package and the duty-cycle scheduler are pure: no clocks, sockets, event loops."""

from __future__ import annotations

import ast
from pathlib import Path

import modelplex.planning

FORBIDDEN = {"asyncio", "onnxruntime", "socket", "time", "random", "threading", "subprocess"}


def test_planning_imports_nothing_impure() -> None:
    root = Path(modelplex.planning.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
