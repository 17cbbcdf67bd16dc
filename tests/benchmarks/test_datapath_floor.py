"""floor.py's arithmetic (floor_table.py) and table: the budget 0.80 leaves per request, and each server's CPU
outside ONNX Runtime (the model's per-image cost taken off only where the server ran it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "datapath"
_SPEC = importlib.util.spec_from_file_location("datapath_floor_table", _DIR / "floor_table.py")
assert _SPEC is not None and _SPEC.loader is not None
floor = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(floor)


@pytest.mark.parametrize("rps, ort_us, budget", [
    (10_000.0, 200.0, 50.0),  # 2 cores / 8,000 per s = 250 µs, less 200
    (8_000.0, 250.0, 62.5),
    (12_500.0, 200.0, 0.0),  # nothing left
])
def test_budget_is_what_0_80_leaves_outside_the_model(rps: float, ort_us: float, budget: float) -> None:
    assert floor.budget_us(rps, ort_us) == pytest.approx(budget)


@pytest.mark.parametrize("cpu, runs_model, outside", [
    ({"server": 6.0, "loadgen": 9.0}, False, 15.0),
    ({"server": 226.0, "loadgen": 35.0}, True, 86.0),
    ({"frontend": 93.0, "workers": 190.0, "loadgen": 13.0}, True, 121.0),
])
def test_outside_takes_the_model_off_only_where_it_ran(cpu: dict[str, float], runs_model: bool, outside: float) -> None:
    assert floor.outside_us(cpu, 175.0, runs_model) == pytest.approx(outside)


def _point(rps: float, cpu: dict[str, float]) -> dict[str, Any]:
    return {"rps": rps, "cpu_us_per_request": cpu}


def test_table_shows_every_round_and_server() -> None:
    rounds = [{"in_process_rps": 10_000.0 + r, "ort_us_per_image": 175.0, "budget_us": 55.0 + r, "servers": {
        floor.FIXED: _point(100_000.0, {"server": 6.0, "loadgen": 9.0}),
        "modelplex": _point(4_000.0 + r, {"frontend": 93.0, "workers": 190.0, "loadgen": 13.0}),
    }} for r in range(2)]
    lines = floor.table(rounds).splitlines()
    assert len(lines) == 2 + 2 * 3
    assert lines[3] == "| 1 | bare (fixed answer) | 100000 | 10.00 | 9 | 6 | 15 | 55 |"
    assert lines[7] == "| 2 | modelplex | 4001 | 0.40 | 13 | 283 | 121 | 56 |"
