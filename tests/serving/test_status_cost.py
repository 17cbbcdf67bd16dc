"""`modelplex status --prices` against a live planned server: the served plan's cost, and the
exclusive baseline's where profiles are given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest


sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from planned import start_planned, two_model_repository  # noqa: E402
from server import RunningServer  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    root = tmp_path_factory.mktemp("cost")
    srv, profiles = start_planned(root, two_model_repository(root))
    yield srv, profiles
    srv.stop()


def _status(srv: RunningServer, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelplex.cli", "status", "--url", f"http://{srv.http_url}", *extra],
                          capture_output=True, text=True, timeout=60)


def test_status_prices_the_served_plan(served: tuple[RunningServer, Path]) -> None:
    srv, profiles = served
    doc = srv.get_json("/v2/plan")
    cores = len({c for s in doc["plan"]["slices"] for c in s["cpus"]})
    rate = sum(doc["controller"]["planned_for_rps"].values())  # the expected rates with the controller's headroom
    assert rate >= 40.0
    r = _status(srv, "--prices", "cpu-core=0.04/h", "--json", "--profiles", str(profiles))
    assert r.returncode == 0, r.stderr
    cost = json.loads(r.stdout)["cost"]
    mine, excl = cost["plan"], cost["exclusive"]
    assert mine["usage"][0]["used"] == cores and mine["rate_rps"] == pytest.approx(rate)
    assert mine["cost_per_hour"] == pytest.approx(0.04 * cores)
    assert mine["cost_per_million_requests"] == pytest.approx(0.04 * cores / (rate * 3600) * 1e6, abs=1e-6)
    # exclusive: each model on a whole 2-core host of its own
    assert excl["usage"][0]["devices"] == 2 and excl["cost_per_hour"] == pytest.approx(4 * 0.04)
    assert cost["exclusive_over_plan"] == pytest.approx(4 / cores, abs=1e-4)
    text = _status(srv, "--prices", "cpu-core=0.04/h")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.startswith("cost: ") and f"= {0.04 * cores:.4g}/h" in line for line in lines), text.stdout
    assert any("exclusive: not available (the server does not report its profiles" in line for line in lines)


def test_status_bad_prices_are_one_line_exit_2(served: tuple[RunningServer, Path]) -> None:
    srv, _ = served
    for prices, needle in (("cpu-core=-1", "a price must be >= 0"), ("gpu=2.5/h", "give a cpu-core= price")):
        r = _status(srv, "--prices", prices)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], r.stderr
