"""Run the data plane with its HTTP and gRPC frontends in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import logging
from collections.abc import Iterator
import signal
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from modelplex.app.control import PlanDriver, build_controller
from modelplex.control.controller import ControllerConfig
from modelplex.core.devices import DeviceKind, DeviceSpec
from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile
from modelplex.planning.service import ServiceModel
from modelplex.repository.folders import scan_repository
from modelplex.repository.store import Registry
from modelplex.runtime.clock import MonotonicClock
from modelplex.runtime.gpu import GpuShares
from modelplex.runtime.local import LocalExecutor
from modelplex.runtime.worker_handle import STALL_TIMEOUT_S
from modelplex.serving.auth import ASGIApp, GrpcGate, HttpGate, TlsFiles, Tokens
from modelplex.serving.dashboard.feed import DashboardFeed
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.decode_pool import DecodePool
from modelplex.serving.http_frontend import DEFAULT_MAX_BODY_BYTES, build_app
from modelplex.serving.http_protocol import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, bounded_protocol
from modelplex.serving.limits import Limits
from modelplex.serving.slice_set import SliceSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """How to run `modelplex serve`."""

    repository: Path  # model repository folder
    host: str = "127.0.0.1"  # address both frontends bind
    http_port: int = 8000  # KServe v2 REST
    grpc_port: int = 8001  # KServe v2 gRPC (0 = off)
    cpus: tuple[int, ...] = ()  # cores to cut into slices
    frontend_cpus: tuple[int, ...] = ()  # cores left to this process (not cut into slices)
    state_dir: Path | None = None  # where the SQLite registry lives (None = no persistence)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # largest request body accepted
    policy: str | None = None  # serve under a plan made by this policy (None = one slice per instance)
    profiles_path: Path | None = None  # profiles JSON for planning (else the registry's)
    expected_rps: tuple[tuple[str, float], ...] = ()  # rates the first plan is made for
    replanning: bool = True  # re-plan as arrival rates move
    controller: ControllerConfig = ControllerConfig()  # re-planning thresholds
    gpus: bool = False  # plan onto this host's GPUs cut into MPS shares (needs --policy)
    limits: Limits = Limits()  # longest wait without a deadline, queue bytes per model and server
    stall_timeout_s: float = STALL_TIMEOUT_S  # a worker silent this long is replaced
    header_timeout_s: float = HEADER_TIMEOUT_S  # HTTP request headers must arrive within this
    body_timeout_s: float = BODY_TIMEOUT_S  # HTTP request bodies must arrive within this
    max_connections: int = 1000  # concurrent HTTP connections (beyond: 503)
    tokens: Tokens = Tokens()  # bearer tokens calls need (none: every call is open)
    tls: TlsFiles | None = None  # serve both frontends over TLS with these files


async def serve(options: ServerOptions) -> int:
    _raise_open_file_limit()
    gpus = _gpus(options)
    log.info("loading models from %s on cores %s ...", options.repository, list(options.cpus))
    if options.frontend_cpus:
        log.info("core(s) %s left to the frontend (--cpus cuts others)", list(options.frontend_cpus))
    try:
        plane, driver = await _start_plane(options, gpus)
    except BaseException:
        if gpus is not None:
            gpus.close()
        raise
    watch = asyncio.ensure_future(_watch_gpus(gpus, plane))
    grpc_server = None
    if options.grpc_port:
        from modelplex.serving.grpc_frontend import start_grpc

        grpc_server = await start_grpc(
            plane, options.host, options.grpc_port, options.max_body_bytes,
            gate=GrpcGate(options.tokens) if options.tokens.enabled else None, tls=options.tls,
        )
    decoder = DecodePool()
    dashboard = _dashboard(plane)
    server = _http_server(options, plane, driver, decoder, dashboard)
    _freeze_startup_objects()
    base = f"{'https' if options.tls else 'http'}://{options.host}:{options.http_port}"
    log.info("serving KServe v2 HTTP on %s%s%s", base, f" and gRPC on {options.host}:{options.grpc_port}" if grpc_server else "",
             " over TLS" if options.tls else "")
    if options.tokens.enabled:
        log.info("load, unload and plans need the admin token; inference %s",
                 "needs the infer or admin token" if options.tokens.infer else "is open")
    if plane.slices.routes:
        log.info("try   curl %s/v2/models/%s", base, sorted(plane.slices.routes)[0])
        log.info("      curl %s/v2/repository/index -X POST", base)
    if driver is not None:
        log.info("plan, slices and SLO attainment: modelplex status --url %s  (or curl %s/v2/plan)", base, base)
    log.info("live dashboard: %s/dashboard", base)
    try:
        await server.serve()
    finally:
        log.info("shutting down")
        await dashboard.stop()
        watch.cancel()
        if driver is not None:
            await driver.stop()
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        await plane.stop()
        decoder.close()
        if gpus is not None:
            gpus.close()
    return 0


async def _watch_gpus(gpus: GpuShares | None, plane: DataPlane) -> None:
    if gpus is not None:
        from modelplex.app.gpu_watch import watch_mps

        await watch_mps(gpus, plane.slices)


async def _start_plane(options: ServerOptions, gpus: GpuShares | None) -> tuple[DataPlane, PlanDriver | None]:
    """The data plane on local worker processes: one slice per model instance, or under a plan
    (profiles, the re-planning controller and its driver) when a policy is given."""
    registry = Registry(options.state_dir) if options.state_dir is not None else None
    devices = gpus.devices() if gpus is not None else []
    controller, service = None, None
    if options.policy is not None:
        configs, _ = scan_repository(options.repository)
        gone = registry.unloaded(c.model for c in configs) if registry is not None else set()  # not planned
        configs = [c for c in configs if c.model.name not in gone]
        kind = "gpu-mps" if options.gpus else "cpu"
        if options.profiles_path is None and options.state_dir is not None:
            from modelplex.profiling.auto import profile_missing

            await profile_missing(configs, options.state_dir, kind, gpus=gpus)
        profiles = load_profiles(sorted(c.model.name for c in configs), options.profiles_path, options.state_dir, kind)
        devices = devices or [DeviceSpec("cpu0", DeviceKind.CPU, len(options.cpus))]
        controller = build_controller(configs, options.policy, profiles, devices, options.controller)
        service = ServiceModel(profiles)
    gpu_ids = [d.device_id for d in devices if d.kind is not DeviceKind.CPU]
    executor = LocalExecutor("cpu", gpus, stall_timeout_s=options.stall_timeout_s)
    slices = SliceSet(executor, MonotonicClock(), options.cpus, gpus=gpus is not None, service=service, gpu_ids=gpu_ids,
                      frontend_cpus=options.frontend_cpus)
    plane = DataPlane(options.repository, slices, registry, arrivals=controller, limits=options.limits,
                      gpu_status=gpus.status if gpus is not None else None)
    driver: PlanDriver | None = None
    if controller is None:
        await plane.start()
    else:
        await plane.load_books()
        driver = PlanDriver(plane, controller, str(options.policy), dict(options.expected_rps), options.replanning)
        log.info("planning with policy %s ...", options.policy)
        await driver.start()
    for name in sorted(slices.routes):
        cores = " | ".join(",".join(map(str, r.slice.cpus)) for r in slices.runners_of(name))
        log.info("  %s v%s ready on cores [%s]", name, plane.books[name].config.model.version, cores)
    if plane.modelless is not None:
        plane.modelless.start()
        log.info("model-less serving for task(s) %s: %d variants, loaded on first use",
                 ", ".join(sorted(plane.modelless.tasks)), len(plane.modelless.variants))
    return plane, driver


def _raise_open_file_limit() -> None:
    """Open files up to the hard limit: every HTTP connection and worker channel is one, and the
    default soft limit (often 1024) is below --max-connections plus what the server holds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d: %s", soft, exc)


def _freeze_startup_objects() -> None:
    """Move everything made at start (modules, models' configs, the app) out of the garbage
    collector's sight. Measured: without this, full collections held the event loop for 40-90 ms
    under load, and answers went out late."""
    gc.collect()
    gc.freeze()


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal capture: that re-raises SIGTERM once uvicorn has
    shut down, ending the process before the workers and the MPS daemon are stopped; the app
    installs handlers that only ask the server to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _dashboard(plane: DataPlane) -> DashboardFeed:
    """The dashboard's sampler, started (one sample a second from the statistics kept anyway)."""
    from modelplex.app.plan_picture import plan_png

    feed = DashboardFeed(plane, render_plan=plan_png)
    feed.start()
    return feed


def _http_server(
    options: ServerOptions, plane: DataPlane, driver: PlanDriver | None, decoder: DecodePool, dashboard: DashboardFeed | None = None,
) -> uvicorn.Server:
    app: ASGIApp = build_app(plane, options.max_body_bytes, driver, decoder, dashboard)
    if options.tokens.enabled:
        app = HttpGate(app, options.tokens)
    tls = options.tls
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.http_port,
        loop="none",
        # answers in bursts only while the frontend has a core of its own (its loop turns are short)
        http=bounded_protocol(options.header_timeout_s, options.body_timeout_s,
                              burst_answers=lambda: bool(plane.slices.frontend_own)),
        limit_concurrency=options.max_connections,
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        timeout_keep_alive=75,  # clients keep pools of idle connections (tritonclient, perf_analyzer)
        server_header=False,
        date_header=False,
        log_level="warning",
        ssl_certfile=str(tls.cert) if tls is not None else None,
        ssl_keyfile=str(tls.key) if tls is not None else None,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    return server


def _gpus(options: ServerOptions) -> GpuShares | None:
    """With --gpus: this host's GPUs probed (MPS, green contexts, MIG instances), the MPS
    daemons the chosen mechanisms need started; one readable line when there is no GPU."""
    if not options.gpus:
        return None
    from modelplex.app.gpu_watch import open_server_gpus

    return open_server_gpus()


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
