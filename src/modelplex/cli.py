"""modelplex command line: `modelplex serve`, `modelplex examples`, and the planning tools."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from modelplex.core.errors import ModelplexError  # noqa: E402
from modelplex.logformat import LOG_FORMAT_ENV, LOG_FORMATS, JsonLinesFormatter  # noqa: E402

Command = Callable[[argparse.Namespace], int]

log = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ENV = "MODELPLEX_LOG_LEVEL"  # worker processes read their level from here


class _Formatter(logging.Formatter):
    """`<prefix>: [warning: |error: ]message`: the lines users have always seen; at debug level
    the logger's name follows the prefix, so a line says which module wrote it."""

    def __init__(self, prefix: str, with_name: bool) -> None:
        super().__init__(f"{prefix}: %(name)s: %(message)s" if with_name else f"{prefix}: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if record.levelno >= logging.WARNING:
            record.message = f"{record.levelname.lower()}: {record.message}"
        return super().formatMessage(record)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirect), not to the
    stream that was current when logging was configured."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # handle() holds the handler's lock here
        super().emit(record)


def configure_logging(level: str = "info", prefix: str = "modelplex", fmt: str = "text") -> None:
    """Log lines go to stderr as `<prefix>: message` (fmt "json": one JSON object per line):
    modelplex's loggers at `level`, other libraries' at warning and above. Calling it again
    replaces the earlier setting (not a second handler). Worker processes started from here inherit
    the level and format through MODELPLEX_LOG_LEVEL and MODELPLEX_LOG_FORMAT."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    numeric = getattr(logging, level.upper())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonLinesFormatter())
    else:
        handler.setFormatter(_Formatter(prefix, with_name=numeric <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("modelplex").setLevel(numeric)
    os.environ[LOG_LEVEL_ENV] = level
    os.environ[LOG_FORMAT_ENV] = fmt


def _cmd_serve(args: argparse.Namespace) -> int:
    from modelplex.runtime.slices import model_cpus
    from modelplex.app.server import ServerOptions, run

    repo = Path(args.repository)
    if not repo.is_dir():
        raise ModelplexError(f"model repository {repo} is not a folder")
    expected: list[tuple[str, float]] = []
    for item in filter(None, (args.expected_rates or "").split(",")):
        name, _, rate = item.partition("=")
        try:
            expected.append((name.strip(), float(rate)))
        except ValueError:
            raise ModelplexError(f"--expected-rates wants model=rate pairs like cnn=50,mlp=100, got {item!r}") from None
    if args.policy is None and (args.profiles or expected or args.gpus):
        raise ModelplexError("--profiles, --expected-rates and --gpus need --policy (a plan decides the slices)")
    from modelplex.serving.auth import TlsFiles, load_tokens

    tokens = load_tokens(_path(args.admin_token_file), _path(args.infer_token_file))
    tls = TlsFiles.of(_path(args.tls_cert), _path(args.tls_key))
    cpus, frontend = model_cpus(args.cpus, keep_frontend_core=args.policy is None)
    options = ServerOptions(
        repository=repo,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        cpus=tuple(cpus),
        frontend_cpus=tuple(frontend),
        state_dir=Path(args.state_dir) if args.state_dir else None,
        max_body_bytes=int(args.max_body_mb * 2**20),
        policy=args.policy,
        profiles_path=Path(args.profiles) if args.profiles else None,
        expected_rps=tuple(expected),
        replanning=not args.no_replan,
        gpus=args.gpus,
        tokens=tokens,
        tls=tls,
        **_limit_options(args),
    )
    return run(options)


def _limit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The serve flags that bound waits, memory and slow clients, checked."""
    from modelplex.serving.limits import Limits

    for flag in ("max_wait_s", "max_queue_mb", "max_model_queue_mb", "stall_timeout_s", "header_timeout_s",
                 "body_timeout_s", "max_connections"):
        if not getattr(args, flag) > 0:
            raise ModelplexError(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    limits = Limits(args.max_wait_s, int(args.max_queue_mb * 2**20), int(args.max_model_queue_mb * 2**20))
    return {"limits": limits, "stall_timeout_s": args.stall_timeout_s, "header_timeout_s": args.header_timeout_s,
            "body_timeout_s": args.body_timeout_s, "max_connections": args.max_connections}


def _add_limit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-wait-s", type=float, default=60.0,
                   help="longest a request without a deadline waits before a 503 (default 60)")
    p.add_argument("--max-queue-mb", type=float, default=1024.0,
                   help="input MiB of requests held at once, all models (default 1024; beyond: 503)")
    p.add_argument("--max-model-queue-mb", type=float, default=512.0,
                   help="the same per model (default 512)")
    p.add_argument("--stall-timeout-s", type=float, default=2.0,
                   help="a worker without a heartbeat this long is killed and replaced (default 2)")
    p.add_argument("--header-timeout-s", type=float, default=10.0, help="HTTP headers must arrive within (default 10)")
    p.add_argument("--body-timeout-s", type=float, default=60.0, help="HTTP bodies must arrive within (default 60)")
    p.add_argument("--max-connections", type=int, default=1000, help="concurrent HTTP connections (default 1000)")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _cmd_examples(args: argparse.Namespace) -> int:
    from modelplex.repository.examples import write_examples

    out = Path(args.out)
    names = write_examples(out)
    print(f"wrote example models {', '.join(names)} to {out}")
    if args.state_dir:
        _register_example_tasks(out, Path(args.tasks_out), Path(args.state_dir))
    return 0


def _register_example_tasks(models: Path, tasks_out: Path, state_dir: Path) -> None:
    """Register the example tasks once (a second run finds them and does nothing): the digits
    models trained now, and the example CNN as image-classification, each with its variants."""
    from modelplex.repository.registry_variants import get_task_model, register
    from modelplex.repository.store import Registry
    from modelplex.repository.tasks import write_task_examples

    with Registry(state_dir) as registry:
        log.info("training and registering the digits task in %s (variants measured) ...", state_dir)
        write_task_examples(tasks_out, registry)
        if get_task_model(registry, "cnn") is None:
            log.info("registering cnn for image-classification (FP32, INT8, FP16 variants) ...")
            register(registry, models / "cnn" / "1" / "model.onnx", "image-classification", "cnn")
    log.info("model-less queries: POST /v2/tasks/{digits|image-classification}/infer "
             "with parameters latency_ms and min_accuracy")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplex", description=__doc__)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                        help="how much to log on stderr (default info); also accepted after the subcommand")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="log lines as text (default) or json (one object per line); also after the subcommand")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_serve_parser(sub)

    p = sub.add_parser("examples", help="write the example model repository")
    p.add_argument("--out", default="examples/models", help="folder to write (default examples/models)")
    p.add_argument("--state-dir", default=None, help="also register the example tasks in this registry")
    p.add_argument("--tasks-out", default="examples/tasks", help="where the trained task models go")
    p.set_defaults(func=_cmd_examples)

    from modelplex import cli_bench, cli_client, cli_models, cli_plan, cli_profile

    cli_client.add_subcommands(sub)
    cli_plan.add_subcommands(sub)
    cli_profile.add_subcommands(sub)
    cli_bench.add_subcommands(sub)
    cli_models.add_subcommands(sub)
    for subparser in sub.choices.values():  # `modelplex serve --log-level debug` works too
        subparser.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                               help="how much to log on stderr (default info)")
        subparser.add_argument("--log-format", choices=LOG_FORMATS, default=argparse.SUPPRESS,
                               help="log lines as text (default) or json (one object per line)")
    return parser


def _add_serve_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("serve", help="serve a model repository over KServe v2 HTTP and gRPC")
    p.add_argument("--repository", required=True, help="folder laid out <model>/<version>/model.onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000, help="KServe v2 REST port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="KServe v2 gRPC port (default 8001, 0 = off)")
    p.add_argument("--cpus", default=None, help="cores to cut into slices, e.g. 0-1 (default: all; without --policy all but the first, which the frontend keeps)")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    p.add_argument("--policy", choices=["elastic", "temporal", "exclusive"], default=None,
                   help="serve under a plan made by this policy from measured profiles, re-planning as rates move")
    p.add_argument("--profiles", default=None, help="profiles JSON (modelplex profile --out); default: the registry's")
    p.add_argument("--expected-rates", default=None, help="rates for the first plan, e.g. cnn=50,mlp=100 (req/s)")
    p.add_argument("--no-replan", action="store_true", help="keep the first plan whatever the traffic")
    p.add_argument("--gpus", action="store_true",
                   help="plan onto this host's GPUs cut into MPS shares (starts an MPS daemon; ONNX Runtime CUDA provider)")
    _add_limit_args(p)
    _add_security_args(p)
    p.set_defaults(func=_cmd_serve)


def _add_security_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--admin-token-file", default=None,
                   help="load, unload, plans and other changes need 'Authorization: Bearer <this token>' "
                        "(default: $MODELPLEX_ADMIN_TOKEN; unset: open)")
    p.add_argument("--infer-token-file", default=None,
                   help="inference and model reads need this token or the admin one (default: $MODELPLEX_INFER_TOKEN; "
                        "unset: open); health and /metrics stay open")
    p.add_argument("--tls-cert", default=None, help="serve HTTPS and gRPC over TLS with this PEM certificate (with --tls-key)")
    p.add_argument("--tls-key", default=None, help="the PEM private key of --tls-cert")


# Commands that open ONNX files: they stop with one line when no ONNX Runtime wheel is installed.
_NEEDS_ORT = {"_cmd_serve", "_cmd_examples", "cmd_query", "cmd_profile", "cmd_register", "cmd_task_examples"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, fmt=args.log_format)
    func: Command = args.func
    if func.__name__ in _NEEDS_ORT:
        from modelplex.runtime.engines import onnxruntime_missing

        missing = onnxruntime_missing()
        if missing:
            log.error("%s", missing)
            return 2
    try:
        return func(args)
    except ModelplexError as exc:
        log.error("%s", exc.message)
        return 2
    except ImportError as exc:  # e.g. an unsupported protobuf runtime (serving.grpc_gen's check)
        if "protobuf" not in str(exc):
            raise
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
