"""Arrival processes: the rates and burstiness asked for, the same times for the same seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelplex.bench.arrivals import renewal, rung, scaled_trace
from modelplex.bench.config import parse_config


def config(tmp_path: Path, **extra: Any) -> Any:
    doc = {"url": "http://127.0.0.1:1", "duration_s": 200, "seed": 7,
           "models": [{"name": "a", "rates": [50, 100]}, {"name": "b", "rates": [10, 20]}], **extra}
    return parse_config(doc, tmp_path)


@pytest.mark.parametrize("rate,cv", [(50.0, 1.0), (200.0, 1.0), (50.0, 3.0), (100.0, 0.5)])
def test_renewal_rate_and_cv(rate: float, cv: float) -> None:
    times = renewal(np.random.default_rng(1), rate, 400.0, cv)
    assert times[0] >= 0 and times[-1] < 400.0 and np.all(np.diff(times) >= 0)
    assert len(times) / 400.0 == pytest.approx(rate, rel=0.05 * max(cv, 1.0))
    gaps = np.diff(times)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_renewal_empty_cases() -> None:
    assert len(renewal(np.random.default_rng(0), 0.0, 10.0)) == 0
    assert len(renewal(np.random.default_rng(0), 10.0, 0.0)) == 0


@pytest.mark.parametrize("arrival,extra", [("poisson", {}), ("gamma", {"cv": 2.5})])
def test_rungs_reproducible_and_per_model(arrival: str, extra: dict[str, Any], tmp_path: Path) -> None:
    cfg = config(tmp_path, arrival=arrival, **extra)
    t1, k1 = rung(cfg, 1)
    t2, k2 = rung(cfg, 1)
    assert np.array_equal(t1, t2) and np.array_equal(k1, k2)
    t0, _ = rung(cfg, 0)
    assert not np.array_equal(t0[:100], t1[:100])  # each rung its own stream
    assert np.all(np.diff(t1) >= 0)
    counts = np.bincount(k1, minlength=2) / 200.0
    assert counts == pytest.approx([100, 20], rel=0.1)
    other = parse_config({**{"url": "http://127.0.0.1:1", "duration_s": 200, "seed": 8, "arrival": arrival, **extra},
                          "models": [{"name": "a", "rates": [50, 100]}, {"name": "b", "rates": [10, 20]}]}, tmp_path)
    assert not np.array_equal(rung(other, 1)[0][:50], t1[:50])  # the seed matters


def test_trace_as_is_scaled_and_named(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("".join(f"{i * 0.1:.1f}{' b' if i % 4 == 0 else ''}\n" for i in range(101)))
    cfg = parse_config({"url": "http://127.0.0.1:1", "arrival": "trace", "trace": "t.txt",
                        "models": [{"name": "a"}, {"name": "b"}]}, tmp_path)
    times, kinds = rung(cfg, 0)
    assert len(times) == 100 and times[1] == pytest.approx(0.1)  # cut at the trace's length (10 s)
    assert np.all(kinds[::4] == 1)  # lines that name a model go to it
    assert np.array_equal(rung(cfg, 0)[1], kinds)
    assert cfg.trace is not None
    fast = scaled_trace(cfg.trace, 100.0, 100.0)
    assert len(fast) == 101 and fast[-1] == pytest.approx(1.0)  # 10 req/s squeezed to 100 req/s
    assert len(scaled_trace(cfg.trace, 100.0, 0.5)) == 50
    ladder = parse_config({"url": "http://127.0.0.1:1", "arrival": "trace", "trace": "t.txt", "rates": [20, 40],
                           "models": [{"name": "a"}, {"name": "b"}]}, tmp_path)
    assert ladder.duration_s == 10.0
    assert [len(rung(ladder, i)[0]) for i in range(2)] == [101, 101]
    assert rung(ladder, 1)[0][-1] == pytest.approx(2.5)
