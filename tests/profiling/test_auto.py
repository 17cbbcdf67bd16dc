"""Profiling at `serve --policy` start: the quick preset, resuming from the registry, and one
command from a fresh state directory to a server under a plan (real processes)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from modelplex.core.profile import Profile
from modelplex.profiling.auto import profile_missing, quick_batches, quick_sizes
from modelplex.profiling.backends import CpuBackend
from modelplex.profiling.hardware import detect_host
from modelplex.profiling.storage import ProfileStore
from modelplex.repository.folders import scan_repository
from modelplex.repository.store import Registry

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from server import RunningServer, start_server  # noqa: E402
sys.path.insert(0, str(Path(__file__).parent))

from conftest import WIDTH, write_tiny_mlp  # noqa: E402


@pytest.mark.parametrize(
    ("capacity", "sizes"),
    [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])],
)
def test_quick_sizes(capacity: int, sizes: list[int]) -> None:
    assert quick_sizes(capacity) == sizes


@pytest.mark.parametrize(("max_batch", "batches"), [(0, [1]), (1, [1]), (4, [1, 4]), (8, [1, 4, 8]), (32, [1, 4, 16])])
def test_quick_batches_clip_to_max_batch_size(tmp_path: Path, max_batch: int, batches: list[int]) -> None:
    write_tiny_mlp(tmp_path, max_batch_size=max_batch)
    [config] = scan_repository(tmp_path)[0]
    assert quick_batches(config) == batches


def _stored(state: Path) -> Profile | None:
    backend = CpuBackend(detect_host())
    with Registry(state) as registry:
        return ProfileStore(registry).get("tiny", backend.hardware, backend.device_kind)


@pytest.mark.slow
def test_measures_only_what_is_missing(tmp_path: Path) -> None:
    write_tiny_mlp(tmp_path / "repo", max_batch_size=4)
    configs, _ = scan_repository(tmp_path / "repo")
    sizes = quick_sizes(len(detect_host().cpus))
    measured = asyncio.run(profile_missing(configs, tmp_path / "state", show_progress=False))
    assert measured == 2 * len(sizes)  # batches 1 and 4 on every quick slice size
    first = _stored(tmp_path / "state")
    assert first is not None and sorted({p.slice_size for p in first.points}) == sizes
    assert asyncio.run(profile_missing(configs, tmp_path / "state", show_progress=False)) == 0  # reused
    # a run killed after some slices: what it stored is kept, only the rest is measured
    partial = Profile("tiny", first.device_kind, first.hardware, tuple(p for p in first.points if p.slice_size == 1))
    with Registry(tmp_path / "resume") as registry:
        ProfileStore(registry).put(partial)
    assert asyncio.run(profile_missing(configs, tmp_path / "resume", show_progress=False)) == 2 * (len(sizes) - 1)


@pytest.mark.slow
def test_serve_with_a_policy_on_a_fresh_state_dir_profiles_then_serves_under_a_plan(tmp_path: Path) -> None:
    write_tiny_mlp(tmp_path / "repo", max_batch_size=4)
    (tmp_path / "repo" / "tiny" / "config.yaml").write_text("max_batch_size: 4\nslo_ms: 200\n")
    state = tmp_path / "state"
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32",
                                   "data": np.ones(WIDTH).tolist()}]}).encode()
    t0 = time.monotonic()
    srv = start_server(tmp_path / "repo", state, ["--policy", "elastic"], timeout_s=120)
    try:
        first_s = time.monotonic() - t0
        status, _ = srv.request("/v2/models/tiny/infer", body)
        assert status == 200
        plan = srv.get_json("/v2/plan")
        assert plan["plan"]["policy"] == "elastic"
        assert any("tiny" in s["models"] for s in plan["slices"])
        assert "profiling tiny" in srv.log() and "profile [" in srv.log()
    finally:
        srv.stop()
    assert _stored(state) is not None
    t0 = time.monotonic()
    srv = start_server(tmp_path / "repo", state, ["--policy", "elastic"], timeout_s=120)
    try:
        again_s = time.monotonic() - t0
        assert srv.request("/v2/models/tiny/infer", body)[0] == 200
        assert "found in the registry" in srv.log() and "profiling tiny" not in srv.log()
        _frontend_cost_is_measured(srv, body)
    finally:
        srv.stop()
    assert again_s < first_s


def _frontend_cost_is_measured(srv: RunningServer, body: bytes) -> None:
    """With re-planning on, the server measures its own CPU per request (control.frontend_load):
    after a few hundred requests the status shows a measured value, not the 200 µs default."""
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: srv.request("/v2/models/tiny/infer", body)[0], range(600))) == {200}
    deadline = time.monotonic() + 10
    while (frontend := srv.get_json("/v2/plan")["controller"]["frontend"])["samples"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert frontend["samples"] >= 1, frontend
    assert frontend["us_per_request"] != 200.0 and 1 < frontend["us_per_request"] < 100_000, frontend
