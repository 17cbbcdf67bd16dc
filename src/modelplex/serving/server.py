"""Run the data plane with its HTTP and gRPC frontends in one event loop."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from modelplex.control.controller import ControllerConfig
from modelplex.control.driver import PlanDriver
from modelplex.core.devices import DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile
from modelplex.repository.store import Registry
from modelplex.runtime.gpu import MpsDaemon, gpu_devices, gpu_names
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.http_frontend import DEFAULT_MAX_BODY_BYTES, build_app


@dataclass(frozen=True)
class ServerOptions:
    """How to run `modelplex serve`."""

    repository: Path  # model repository folder
    host: str = "127.0.0.1"  # address both frontends bind
    http_port: int = 8000  # KServe v2 REST
    grpc_port: int = 8001  # KServe v2 gRPC (0 = off)
    cpus: tuple[int, ...] = ()  # cores to cut into slices
    state_dir: Path | None = None  # where the SQLite registry lives (None = no persistence)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # largest request body accepted
    policy: str | None = None  # serve under a plan made by this policy (None = one slice per instance)
    profiles_path: Path | None = None  # profiles JSON for planning (else the registry's)
    expected_rps: tuple[tuple[str, float], ...] = ()  # rates the first plan is made for
    replanning: bool = True  # re-plan as arrival rates move
    controller: ControllerConfig = ControllerConfig()  # re-planning thresholds
    gpus: bool = False  # plan onto this host's GPUs cut into MPS shares (needs --policy)


async def serve(options: ServerOptions) -> int:
    registry = Registry(options.state_dir) if options.state_dir is not None else None
    plane = DataPlane(options.repository, list(options.cpus), registry)
    print(f"modelplex: loading models from {options.repository} on cores {list(options.cpus)} ...", flush=True)
    driver: PlanDriver | None = None
    devices: list[DeviceSpec] = []
    if options.gpus:
        names_gpu = gpu_names()
        if not names_gpu:
            raise InvalidArgumentError("--gpus: no GPU found (nvidia-smi lists none)")
        state = options.state_dir or Path("state")
        plane.mps = MpsDaemon(state / "mps" / "pipe", state / "mps" / "log")
        plane.mps.ensure_running()
        devices = gpu_devices(names_gpu)
        print(f"modelplex: GPUs {', '.join(names_gpu)} cut into MPS shares (daemon pipes in {plane.mps.pipe_dir})", flush=True)
    if options.policy is None:
        await plane.start()
    else:
        names = await plane.load_books()
        kind = "gpu-mps" if options.gpus else "cpu"
        profiles = load_profiles(names, options.profiles_path, options.state_dir, kind)
        driver = PlanDriver(
            plane, options.policy, profiles, options.controller, dict(options.expected_rps), options.replanning, devices=devices
        )
        print(f"modelplex: planning with policy {options.policy} ...", flush=True)
        await driver.start()
    for name, route in sorted(plane.routes.items()):
        cores = " | ".join(",".join(map(str, r.slice.cpus)) for r in route.runners)
        print(f"modelplex:   {name} v{plane.books[name].config.model.version} ready on cores [{cores}]", flush=True)
    modelless = None
    if registry is not None:
        from modelplex.repository.registry_variants import list_variants
        from modelplex.serving.modelless import ModelLess

        if list_variants(registry):
            modelless = ModelLess(plane, registry)
            plane.modelless = modelless
            modelless.start()
            print(f"modelplex: model-less serving for task(s) {', '.join(sorted(modelless.tasks))}: "
                  f"{len(modelless.variants)} variants, loaded on first use", flush=True)
    grpc_server = None
    if options.grpc_port:
        from modelplex.serving.grpc_frontend import start_grpc

        grpc_server = await start_grpc(plane, options.host, options.grpc_port, options.max_body_bytes)
    config = uvicorn.Config(
        build_app(plane, options.max_body_bytes, driver),
        host=options.host,
        port=options.http_port,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        timeout_keep_alive=75,  # clients keep pools of idle connections (tritonclient, perf_analyzer)
        server_header=False,
        date_header=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    base = f"http://{options.host}:{options.http_port}"
    print(f"modelplex: serving KServe v2 HTTP on {base}" + (f" and gRPC on {options.host}:{options.grpc_port}" if grpc_server else ""), flush=True)
    if plane.routes:
        name = sorted(plane.routes)[0]
        print(f"modelplex: try   curl {base}/v2/models/{name}", flush=True)
        print(f"modelplex:       curl {base}/v2/repository/index -X POST", flush=True)
    try:
        await server._serve()
    finally:
        print("modelplex: shutting down", file=sys.stderr, flush=True)
        if driver is not None:
            await driver.stop()
        if modelless is not None:
            await modelless.stop()
        if plane.mps is not None:
            plane.mps.stop()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        await plane.stop()
    return 0


def load_profiles(models: list[str], path: Path | None, state_dir: Path | None, kind: str = "cpu") -> list[Profile]:
    """Profiles of `models` on devices of `kind`: from a `modelplex profile --out` file, else
    measured on this host and kept in the registry. Every model needs one: the planner cannot
    place a model blind."""
    from modelplex.profiling.hardware import detect_host
    from modelplex.profiling.storage import ProfileStore, read_export

    found: dict[str, Profile] = {}
    if path is not None:
        if not path.is_file():
            raise InvalidArgumentError(f"profiles file {path} does not exist")
        found = {p.model: p for p in read_export(path) if p.device_kind == kind}
    elif state_dir is not None:
        store = ProfileStore(Registry(state_dir))
        host = detect_host()
        signature = host.cpu_signature if kind == "cpu" else host.gpu_signature()
        for m in models:
            p = store.get(m, signature, kind)
            if p is not None:
                found[m] = p
    missing = [m for m in models if m not in found]
    if missing:
        raise InvalidArgumentError(
            f"no {kind} profile for model(s) {', '.join(missing)}: run `modelplex profile --repository ...` first "
            "or pass --profiles FILE"
        )
    return [found[m] for m in models]


def run(options: ServerOptions) -> int:
    import uvloop

    return uvloop.run(serve(options))
