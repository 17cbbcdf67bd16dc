"""`modelplex register`, `modelplex variants` and `modelplex task-examples`: tasks and variants.

Wired into `modelplex` by `add_subcommands`; also runnable alone (`python -m modelplex.cli_models`)
with the same one-line errors and exit code 2 as the main CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import modelplex  # noqa: F401  (sets ORT_DISABLE_TELEMETRY before onnxruntime is imported)
from modelplex.core.errors import InvalidArgumentError, ModelplexError

log = logging.getLogger(__name__)


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("register", help="register an FP32 ONNX model for a task and generate its variants")
    p.add_argument("model", help="the FP32 ONNX file (dynamic batch axis)")
    p.add_argument("--task", required=True, help="task it serves (a known task, or with --new-task a new one)")
    p.add_argument("--name", required=True, help="model name; variants are named <name>:<precision>")
    p.add_argument("--validation", default=None,
                   help=".npz with `inputs` (or one array per input name) and optional `labels`")
    p.add_argument("--new-task", action="store_true", help="create the task when it is not known")
    p.add_argument("--no-profile", action="store_true", help="store variants without measuring latency")
    p.add_argument("--slices", default="", help="CPU slice sizes to profile, e.g. 1,2 (default: 1..all cores)")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("variants", help="list registered variants (of one task)")
    p.add_argument("task", nargs="?", default=None, help="only this task's variants")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.set_defaults(func=cmd_variants)

    p = sub.add_parser("task-examples", help="train the digits example task's models and register them")
    p.add_argument("--out", default="examples/tasks", help="folder for the models and validation data")
    p.add_argument("--no-profile", action="store_true", help="store variants without measuring latency")
    p.add_argument("--state-dir", default="state", help="registry folder (SQLite); default ./state")
    p.set_defaults(func=cmd_task_examples)


def _registry(state_dir: str) -> Any:
    from modelplex.repository.store import Registry

    return Registry(Path(state_dir))


def cmd_register(args: argparse.Namespace) -> int:
    from modelplex.repository.registry_variants import register
    from modelplex.repository.variants import ProfileSettings, worker_profiler

    sizes: tuple[int, ...] = ()
    if args.slices:
        try:
            sizes = tuple(sorted({int(x) for x in args.slices.split(",") if x.strip()}))
        except ValueError:
            raise InvalidArgumentError(f"--slices {args.slices!r} is not a list of integers like 1,2") from None
    with _registry(args.state_dir) as registry:
        variants = register(
            registry, Path(args.model), args.task, args.name,
            Path(args.validation) if args.validation else None,
            create_task=args.new_task, profile=not args.no_profile,
            profiler=None if args.no_profile else worker_profiler(ProfileSettings(slice_sizes=sizes)),
        )
    print(f"registered {args.name} for task {args.task}: {len(variants)} variant(s)")
    print(format_table(variants))
    return 0


def cmd_variants(args: argparse.Namespace) -> int:
    from modelplex.repository.registry_variants import list_tasks, list_variants

    with _registry(args.state_dir) as registry:
        if args.task is not None and args.task not in {t.name for t in list_tasks(registry)}:
            raise InvalidArgumentError(f"unknown task {args.task!r}")
        variants = list_variants(registry, task=args.task)
    if not variants:
        print("no variants registered" + (f" for task {args.task}" if args.task else ""))
        return 0
    print(format_table(variants))
    return 0


def cmd_task_examples(args: argparse.Namespace) -> int:
    from modelplex.repository.tasks import TASK, write_task_examples

    with _registry(args.state_dir) as registry:
        done = write_task_examples(Path(args.out), registry, profile=not args.no_profile)
        from modelplex.repository.registry_variants import list_variants

        variants = list_variants(registry, task=TASK)
    print(f"wrote the {TASK} task to {args.out}; registered {', '.join(done) or 'nothing new'}")
    print(format_table(variants))
    return 0


def format_table(variants: list[Any]) -> str:
    """variant, task, precision, device, accuracy (kind), p50 ms at batch 1 per slice size, memory."""
    sizes = sorted({p.slice_size for v in variants if v.profile for p in v.profile.points})
    head = ["variant", "task", "precision", "device", "accuracy", *[f"p50@b1 s={s} ms" for s in sizes], "memory MB"]
    rows = [head]
    for v in variants:
        acc = "-" if v.accuracy is None else f"{v.accuracy:.4f} ({v.accuracy_kind})"
        lat = []
        for s in sizes:
            measured = v.profile is not None and any(p.slice_size == s for p in v.profile.points)
            lat.append(f"{v.p50_ms(s, 1):.4g}" if measured else "-")
        mem = "-" if v.memory_mb is None else f"{v.memory_mb:.0f}"
        rows.append([v.name, v.task, v.precision.value, v.device_kind, acc, *lat, mem])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    from modelplex.cli import LOG_LEVELS, configure_logging

    parser = argparse.ArgumentParser(prog="modelplex", description=__doc__)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="how much to log on stderr (default info)")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except ModelplexError as exc:
        log.error("%s", exc.message)
        return 2


if __name__ == "__main__":
    sys.exit(main())
