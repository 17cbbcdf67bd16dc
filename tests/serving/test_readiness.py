"""Server readiness means models loaded, and an unload survives a restart: the data plane on the
fake executor and a virtual clock (fast), then a real server restarted on the same state dir."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from models import identity_fp32  # tests/support (conftest puts it on the path)
from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from modelplex.repository.store import ModelState, Registry
from modelplex.runtime.clock import VirtualClock
from modelplex.runtime.fake import FakeExecutor
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.slice_set import SliceSet
from server import start_server

START_S = 0.050  # fake worker start time


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ready-repo")
    identity_fp32(root / "a" / "1" / "model.onnx")
    identity_fp32(root / "b" / "1" / "model.onnx")
    return root


def plane_on(repo: Path, clock: VirtualClock, fake: FakeExecutor, registry: Registry | None = None) -> DataPlane:
    return DataPlane(repo, SliceSet(fake, clock, [0, 1]), registry)


def index(plane: DataPlane) -> dict[str, tuple[str, str]]:
    return {e.name: (e.state, e.reason) for e in plane.repository_index()}


def test_ready_only_with_models_running_and_no_load_in_progress(repo: Path) -> None:
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.001, lambda spec, models: START_S)

    async def main() -> None:
        plane = plane_on(repo, clock, fake)
        assert not plane.ready()  # nothing placed yet
        starting = asyncio.ensure_future(plane.start())
        await clock.sleep(START_S / 2)
        assert not plane.ready()  # starting
        await starting
        assert plane.ready()
        slice_a = plane.slices.runners_of("a")[0].slice_id
        fake.crash(slice_a)
        assert not plane.ready()  # a's slice is down until it restarts
        await clock.sleep(START_S * 2)
        assert plane.ready()
        plan = Plan("t", (DeviceSpec("cpu0", DeviceKind.CPU, 2),), (
            SlicePlan("cpu0/x", SliceSpec("cpu0", 1, (0,)), (ModelAssignment("a", 1, 10.0, 1.0, 1.0),), 0.0, 0.1),))
        applying = asyncio.ensure_future(plane.apply_plan(plan))
        await clock.sleep(START_S / 2)
        assert not plane.ready()  # a plan is being applied
        await applying
        assert plane.ready() and set(plane.slices.routes) == {"a", "b"}  # b keeps its own slice
        await plane.unload("a")
        assert plane.ready()
        await plane.unload("b")
        assert not plane.ready()  # nothing placed
        loading = asyncio.ensure_future(plane.load("a"))
        await clock.sleep(START_S / 2)
        assert not plane.ready()
        await loading
        assert plane.ready()
        await plane.stop()

    clock.run(main())


def test_an_unload_is_kept_in_the_registry_until_a_load(repo: Path, tmp_path: Path) -> None:
    clock = VirtualClock()
    fake = FakeExecutor(clock, lambda spec, model, rows: 0.001)

    async def main() -> None:
        with Registry(tmp_path) as registry:
            first = plane_on(repo, clock, fake, registry)
            await first.start()
            await first.unload("a")
            await first.stop()
            again = plane_on(repo, clock, fake, registry)
            await again.start()  # a "restart" on the same registry
            assert set(again.slices.routes) == {"b"} and again.ready()
            assert index(again) == {"a": ("UNAVAILABLE", "unloaded"), "b": ("READY", "")}
            await again.load("a")
            assert index(again)["a"] == ("READY", "")
            rec = registry.get("a", "1")
            assert rec is not None and rec.state is ModelState.READY
            await again.stop()

    clock.run(main())


@pytest.mark.slow
def test_unload_survives_a_server_restart(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"

    def models_of(srv: object) -> dict[str, tuple[str, str]]:
        status, raw = srv.request("/v2/repository/index", b"")  # type: ignore[attr-defined]
        assert status == 200
        return {e["name"]: (e["state"], e.get("reason", "")) for e in json.loads(raw)}

    srv = start_server(repo, state, ["--cpus", "0"])
    try:
        assert srv.request("/v2/health/ready")[0] == 200
        assert srv.request("/v2/repository/models/a/unload", b"")[0] == 200
        assert srv.request("/v2/health/ready")[0] == 200  # b still serves
    finally:
        srv.stop()
    srv = start_server(repo, state, ["--cpus", "0"])
    try:
        assert models_of(srv) == {"a": ("UNAVAILABLE", "unloaded"), "b": ("READY", "")}
        assert srv.request("/v2/models/a/ready")[0] == 400
        assert srv.request("/v2/repository/models/b/unload", b"")[0] == 200
        assert srv.request("/v2/health/ready")[0] == 400  # nothing loaded: not ready
        assert srv.request("/v2/repository/models/a/load", b"")[0] == 200
        assert srv.request("/v2/health/ready")[0] == 200
    finally:
        srv.stop()
    srv = start_server(repo, state, ["--cpus", "0"])
    try:
        assert models_of(srv) == {"a": ("READY", ""), "b": ("UNAVAILABLE", "unloaded")}
        assert srv.request("/v2/health/ready")[0] == 200
        assert "not loading b: unloaded over the API" in srv.log()
    finally:
        srv.stop()
