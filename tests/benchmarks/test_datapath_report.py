"""The data-path benchmark's tables: rounds grouped per point, the median round shown with every
round's req/s, and result files written before rounds still readable."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "datapath_report", Path(__file__).resolve().parents[2] / "benchmarks" / "datapath" / "report.py")
assert _SPEC is not None and _SPEC.loader is not None
report = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(report)


def _row(rps: float, rnd: int, client: str = "http-binary", conc: int = 32) -> dict[str, Any]:
    return {"client": client, "concurrency": conc, "rps": rps, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0, "round": rnd,
            "cpu_us_per_request": {"loadgen": 10.0, "frontend": rps / 100, "workers": 200.0}}


@pytest.mark.parametrize("rps, median", [
    ([5.0], 5.0),
    ([3.0, 1.0, 2.0], 2.0),
    ([4.0, 1.0], 1.0),  # an even count: the lower middle, a round that was measured
    ([9.0, 7.0, 8.0, 1.0], 7.0),
])
def test_median_is_a_measured_round(rps: list[float], median: float) -> None:
    assert report.median_round([_row(v, i) for i, v in enumerate(rps)])["rps"] == median


def test_points_group_rounds_in_first_measured_order() -> None:
    rows = [_row(1, 0, conc=1), _row(2, 0), _row(3, 1, conc=1), _row(4, 1)]
    assert [[r["rps"] for r in g] for g in report.by_point(rows)] == [[1, 3], [2, 4]]


def test_tables_show_median_and_every_round(capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"in_process": [{"callers": c, "round": r, "rps": 1000.0 * c + r, "p50_ms": 0.2, "p99_ms": 0.3}
                          for r in range(3) for c in (1, 2)],
           "modelplex": [_row(900, 0), _row(700, 1), _row(800, 2)], "modelplex (both cores)": [_row(600, 1)]}
    report.print_tables(doc)
    out = capsys.readouterr().out
    assert "| modelplex http-binary | 32 | 800 | 0.40 |" in out and "| 900 / 700 / 800 |" in out
    assert "| ONNX Runtime in-process, 2 caller(s) | 2 | 2001 | 1.00 |" in out
    assert "| modelplex (both cores) | http-binary | 32 | 10 | 6 | 200 | 206 |" in out


def test_files_from_before_rounds_still_print(capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"in_process": {"1 caller(s)": {"rps": 500.0, "p50_ms": 0.2, "p99_ms": 0.3},
                          "2 caller(s)": {"rps": 1000.0, "p50_ms": 0.2, "p99_ms": 0.3}},
           "modelplex": [{k: v for k, v in _row(500, 0).items() if k != "round"}], "modelplex_base": [], "mlserver": []}
    report.print_tables(doc)
    assert "| modelplex http-binary | 32 | 500 | 0.50 |" in capsys.readouterr().out
