"""The pure core (planning, batching, selection, rate estimation, re-planning and autoscaling
decisions, shared types) has no I/O: no clocks, sockets, event loops, processes or ONNX Runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import modelplex

FORBIDDEN = {
    "asyncio", "onnxruntime", "socket", "time", "random", "threading", "subprocess", "urllib", "sqlite3",
    "matplotlib", "yaml", "grpc", "psutil", "multiprocessing", "os", "ray", "starlette", "uvicorn",
}
ROOT = Path(modelplex.__file__).parent
PURE_PACKAGES = ["core", "dispatch", "planning", "control"]


def _module_path(name: str) -> Path | None:
    """The file of a modelplex module (package or module), None outside the package."""
    parts = name.split(".")
    if parts[0] != "modelplex":
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def impure_imports(start: Path) -> list[str]:
    """Forbidden imports reachable from `start` through modelplex modules, as 'chain -> module'."""
    seen: set[Path] = set()
    stack: list[tuple[Path, str]] = [(start, str(start.relative_to(ROOT)))]
    found: list[str] = []
    while stack:
        path, chain = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in sorted(_imports(path)):
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"{chain} -> {name}")
            target = _module_path(name)
            if target is not None and target not in seen:
                stack.append((target, f"{chain} -> {name}"))
    return found


PURE = [p for pkg in PURE_PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))]


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_modules_import_nothing_impure_transitively(path: Path) -> None:
    assert impure_imports(path) == []


def test_the_check_catches_an_impure_import(tmp_path: Path) -> None:
    # a module of the package that imports psutil through another: the chain is reported
    assert impure_imports(ROOT / "serving" / "slice_runner.py"), "serving imports asyncio; the check must see it"


@pytest.mark.slow
def test_package_type_checks_strictly() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
