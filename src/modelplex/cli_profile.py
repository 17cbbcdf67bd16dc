"""`modelplex profile`: measure every model on every slice size and batch, store the profiles in
the registry, export/import them as JSON, evaluate the latency model, fit the interference model."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.model import ModelConfig
from modelplex.core.profile import Profile

DEFAULT_BATCHES = "1,2,4,8,16,32,64"

log = logging.getLogger(__name__)


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("profile", help="measure latency per model x slice size x batch, and interference")
    p.add_argument("--repository", help="model repository folder (<model>/<version>/model.onnx)")
    p.add_argument("--models", default="", help="comma-separated model names (default: all in the repository)")
    p.add_argument("--batches", default=DEFAULT_BATCHES, help=f"batch sizes (default {DEFAULT_BATCHES}); "
                   "batches above a model's max_batch_size are skipped")
    p.add_argument("--slices", default="", help="slice sizes: CPU cores, e.g. 1,2 (default: 1..all cores); "
                   "with --gpus, MPS shares in %% (default 20,40,50,60,80,100)")
    p.add_argument("--gpus", action="store_true", help="profile MPS shares of GPU 0 (profiles of kind gpu-mps) "
                   "instead of CPU slices; ONNX models need onnxruntime-gpu, PyTorch models torch with CUDA")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.add_argument("--out", default="", help="also export the profiles of the models to this JSON file")
    p.add_argument("--plot", default="", help="write plots to this PNG file")
    p.add_argument("--repeats", type=int, default=0, help="fixed timed runs per point (default: adaptive)")
    p.add_argument("--budget-s", type=float, default=1.5, help="adaptive: most seconds timing one point (default 1.5)")
    p.add_argument("--rel-ci", type=float, default=0.02,
                   help="adaptive: stop when the median's 95%% CI half-width is this fraction of it (default 0.02)")
    p.add_argument("--force", action="store_true", help="re-measure points the registry already has")
    p.add_argument("--import", dest="import_file", default="", help="load a profiles JSON export into the registry and exit")
    p.add_argument("--interference", action="store_true", help="also run model pairs on two 1-core slices and fit the slowdown model")
    p.add_argument("--pair-batches", default="1,8", help="batches of the interference runs (default 1,8)")
    p.add_argument("--pair-duration-s", type=float, default=1.0, help="seconds of each solo and pair run (default 1.0)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_profile)


def parse_int_list(text: str, flag: str) -> list[int]:
    parts = [x.strip() for x in text.split(",") if x.strip()]
    if not parts:
        raise InvalidArgumentError(f"{flag} is empty: give comma-separated positive integers, e.g. 1,2,4")
    try:
        values = [int(x) for x in parts]
    except ValueError:
        raise InvalidArgumentError(f"{flag} {text!r} is not a list of integers like 1,2,4") from None
    if any(v < 1 for v in values):
        raise InvalidArgumentError(f"{flag} values must be >= 1, got {text!r}")
    return sorted(set(values))


def cmd_profile(args: argparse.Namespace) -> int:
    from modelplex.profiling.storage import check_writable

    state_dir = Path(args.state_dir)
    if args.import_file:
        check_writable(state_dir)
        return _import(Path(args.import_file), state_dir)
    if not args.repository:
        raise InvalidArgumentError("--repository is required (or --import FILE)")
    if args.repeats < 0 or args.budget_s <= 0 or args.rel_ci <= 0 or args.pair_duration_s <= 0:
        raise InvalidArgumentError("--repeats must be >= 0; --budget-s, --rel-ci and --pair-duration-s > 0")
    batches = parse_int_list(args.batches, "--batches")
    pair_batches = parse_int_list(args.pair_batches, "--pair-batches")

    from modelplex.profiling.backends import CpuBackend, gpu_backend
    from modelplex.profiling.hardware import detect_host

    host = detect_host()
    # sizes are checked before anything starts; no GPU: one line, exit 2
    backend: Any = gpu_backend(host, None) if args.gpus else CpuBackend(host)
    sizes = parse_int_list(args.slices, "--slices") if args.slices else backend.default_sizes()
    for size in sizes:
        backend.check_size(size)
    if args.interference and len(host.cpus) < 2:
        raise InvalidArgumentError("--interference needs at least 2 cores (two 1-core slices)")
    check_writable(state_dir)
    configs = select_models(Path(args.repository), args.models)
    if not args.gpus:
        return asyncio.run(_run(args, state_dir, host, backend, configs, sizes, batches, pair_batches))
    return _run_gpu(args, state_dir, host, configs, sizes, batches, pair_batches)


def _run_gpu(args: argparse.Namespace, state_dir: Path, host: Any, configs: list[ModelConfig],
             sizes: list[int], batches: list[int], pair_batches: list[int]) -> int:
    """Profile on the GPU: skip (one line each) the models that cannot run there, share the GPU
    the way the host offers (runtime.gpu_probe: MPS daemons in private pipe directories, stopped at
    the end when this run started them)."""
    from modelplex.profiling.backends import gpu_backend, gpu_skips
    from modelplex.runtime.gpu_probe import open_gpu_shares

    skips = gpu_skips(configs)
    for name, why in sorted(skips.items()):
        log.warning("skipping model %s on the GPU: %s", name, why)
    configs = [c for c in configs if c.model.name not in skips]
    if not configs:
        raise InvalidArgumentError("no model can run on the GPU here (see the lines above)")
    shares = open_gpu_shares()
    try:
        backend = gpu_backend(host, shares)
        return asyncio.run(_run(args, state_dir, host, backend, configs, sizes, batches, pair_batches))
    finally:
        shares.close()


def select_models(repository: Path, models: str) -> list[ModelConfig]:
    """The highest version of each selected model; one-line warnings for models that fail to load."""
    from modelplex.repository.folders import scan_repository

    configs, errors = scan_repository(repository)
    latest: dict[str, ModelConfig] = {}
    for c in configs:  # versions come in ascending order
        latest[c.model.name] = c
    wanted = [m.strip() for m in models.split(",") if m.strip()] if models else sorted(latest)
    unknown = [m for m in wanted if m not in latest]
    if unknown:
        why = "; ".join(f"{m}: {errors[m]}" for m in unknown if m in errors)
        raise InvalidArgumentError(
            f"unknown model(s) {', '.join(unknown)} in {repository} (available: {', '.join(sorted(latest)) or 'none'})"
            + (f" ({why})" if why else "")
        )
    for name, err in sorted(errors.items()):
        if not models or name in wanted:
            log.warning("skipping model %s: %s", name, err)
    if not wanted:
        raise InvalidArgumentError(f"no loadable models in {repository}")
    return [latest[m] for m in wanted]


def _import(path: Path, state_dir: Path) -> int:
    from modelplex.profiling.storage import ProfileStore, import_profiles, read_export
    from modelplex.repository.store import Registry

    profiles = read_export(path)
    with Registry(state_dir) as registry:
        merged = import_profiles(ProfileStore(registry), profiles)
    for p in merged:
        print(f"imported {p.model} [{p.device_kind} / {p.hardware}]: {len(p.points)} points")
    return 0


async def _run(args: argparse.Namespace, state_dir: Path, host: Any, backend: Any, configs: list[ModelConfig],
               sizes: list[int], batches: list[int], pair_batches: list[int]) -> int:
    from modelplex.profiling.latency_model import leave_one_out
    from modelplex.profiling.progress import Progress
    from modelplex.profiling.runner import plan_work, run_plan
    from modelplex.profiling.stats import StopRule
    from modelplex.profiling.storage import ProfileStore, export_json
    from modelplex.repository.store import Registry

    if args.repeats:
        rule = StopRule(min_samples=args.repeats, max_samples=args.repeats, min_s=0.0, budget_s=float("inf"))
    else:
        rule = StopRule(rel_ci=args.rel_ci, budget_s=args.budget_s)
    t0 = time.monotonic()
    with Registry(state_dir) as registry:
        store = ProfileStore(registry)
        plan = plan_work(configs, sizes, batches, store, backend, force=args.force)
        log.info("profiling %d model(s) on %s: %d point(s) to measure, %d already in the registry, "
                 "%d above max_batch_size", len(configs), backend.hardware, plan.points, plan.known, plan.too_big)
        progress = Progress(plan.points, "profile", enabled=not args.quiet)
        await run_plan(plan, backend, store, rule, progress=progress)
        progress.close(f"{plan.points} points")
        profiles = [p for p in (store.get(c.model.name, backend.hardware, backend.device_kind) for c in configs) if p]
        loo = leave_one_out(profiles)
        print_profiles(profiles)
        print_loo(loo.summary())
        gpu_note = gpu_status(host, backend)
        print(f"GPU: {gpu_note}")
        interference: dict[str, Any] = {}
        observations: list[Any] = []
        predicted: list[float] = []
        if args.interference:
            from modelplex.profiling.fit import run_interference

            interference, observations, predicted = await run_interference(
                configs, store, backend, state_dir, pair_batches, args.pair_duration_s, quiet=args.quiet
            )
            profiles = [p for p in (store.get(c.model.name, backend.hardware, backend.device_kind) for c in configs) if p]
        elapsed = time.monotonic() - t0
        print(f"profile run took {elapsed:.1f} s")
    meta: dict[str, Any] = {
        "hardware": backend.hardware,
        "device_kind": backend.device_kind,
        "cpu_model": host.cpu_model,
        "cores": len(host.cpus),
        "gpu": gpu_note,
        "latency_model_loo": loo.summary(),
    }
    if interference:
        meta["interference"] = {k: v for k, v in interference.items() if k != "observations"}
    if args.out:
        export_json(Path(args.out), profiles, meta)
        print(f"wrote {args.out}")
    if args.plot:
        from modelplex.profiling.plots import plot_all

        plot_all(Path(args.plot), profiles, observations, predicted)
        print(f"wrote {args.plot}")
    return 0


def gpu_status(host: Any, backend: Any = None) -> str:
    """Whether GPU slices were measured in this run."""
    if backend is not None and backend.device_kind != "cpu":
        return f"measured ({backend.hardware}: MPS shares, profiles of kind {backend.device_kind})"
    if not host.gpu_names:
        return "not measured (no nvidia-smi / no GPU on this host)"
    return f"not measured ({host.gpu_names[0]} present: run `modelplex profile --gpus` for MPS shares)"


def print_profiles(profiles: list[Profile]) -> None:
    print(f"{'model':<14}{'slice':>6}{'batch':>6}{'p50 ms':>11}{'p99 ms':>11}{'inf/s':>11}{'runs':>6}")
    for prof in profiles:
        for p in sorted(prof.points, key=lambda q: (q.slice_size, q.batch)):
            print(f"{prof.model:<14}{p.slice_size:>6}{p.batch:>6}{p.p50_ms:>11.3f}{p.p99_ms:>11.3f}"
                  f"{p.throughput_rps:>11.1f}{p.samples:>6}")
        print(f"{prof.model:<14} memory {prof.memory_mb:.0f} MB, worker start+load {prof.load_s:.2f} s")


def print_loo(summary: dict[str, float]) -> None:
    print(f"latency model, leave-one-out over {summary['points']:.0f} points: median error "
          f"{summary['median_rel_error'] * 100:.1f}%, max {summary['max_rel_error'] * 100:.1f}%; "
          f"interior points ({summary['interior_points']:.0f}): median "
          f"{summary['interior_median_rel_error'] * 100:.1f}%, max {summary['interior_max_rel_error'] * 100:.1f}%")
