"""modelplex command line: `modelplex serve`, `modelplex examples`, and the planning tools."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from modelplex.core.errors import ModelplexError  # noqa: E402

Command = Callable[[argparse.Namespace], int]


def _cmd_serve(args: argparse.Namespace) -> int:
    from modelplex.runtime.slices import parse_cpus
    from modelplex.serving.server import ServerOptions, run

    repo = Path(args.repository)
    if not repo.is_dir():
        raise ModelplexError(f"model repository {repo} is not a folder")
    options = ServerOptions(
        repository=repo,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        cpus=tuple(parse_cpus(args.cpus)),
        state_dir=Path(args.state_dir) if args.state_dir else None,
        max_body_bytes=int(args.max_body_mb * 2**20),
    )
    return run(options)


def _cmd_examples(args: argparse.Namespace) -> int:
    from modelplex.repository.examples import write_examples

    out = Path(args.out)
    names = write_examples(out)
    print(f"modelplex: wrote example models {', '.join(names)} to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplex", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve a model repository over KServe v2 HTTP and gRPC")
    p.add_argument("--repository", required=True, help="folder laid out <model>/<version>/model.onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000, help="KServe v2 REST port (default 8000)")
    p.add_argument("--grpc-port", type=int, default=8001, help="KServe v2 gRPC port (default 8001, 0 = off)")
    p.add_argument("--cpus", default=None, help="cores to cut into slices, e.g. 0-1 (default: all)")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("examples", help="write the example model repository")
    p.add_argument("--out", default="examples/models", help="folder to write (default examples/models)")
    p.set_defaults(func=_cmd_examples)

    for module in ("modelplex.cli_plan", "modelplex.cli_profile"):
        try:
            mod = __import__(module, fromlist=["add_subcommands"])
        except ImportError:
            continue
        mod.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except ModelplexError as exc:
        print(f"modelplex: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
