"""Tasks, registered models and their variants in the SQLite registry (schema migration 2).

Known tasks: the built-in list the migration seeds (image-classification, tabular-classification,
text-embedding, digits) plus any added with `add_task` (`modelplex register --new-task`). A
registration naming another task is refused, so a typo never creates a task of its own.

`register` is transactional: the variant files are generated and measured in a scratch folder
first (repository.scratch: locked while in use, flushed to disk before the commit, swept by the
next Registry opened if the process dies); the rows (task, model, variants, their profiles) are
written in one SQLite transaction, and the folder is renamed into place inside it. Any failure rolls back the rows and removes the
files, so the registry is unchanged; the error is an InvalidArgumentError of one line.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelplex.core.errors import InvalidArgumentError, ModelplexError, NotFoundError
from modelplex.core.model import ModelConfig, ModelId
from modelplex.core.profile import Profile
from modelplex.planning.selection import Candidate
from modelplex.repository.config import ServingOverrides, build_model_config, inspect_onnx
from modelplex.repository.encoding import model_config_from_json, model_config_to_json
from modelplex.repository.scratch import Scratch
from modelplex.repository.store import Registry
from modelplex.repository.variants import (
    ALL_PRECISIONS,
    Precision,
    ProfileSettings,
    Variant,
    VariantProfiler,
    build_variants,
    generate_files,
    load_validation,
    synthetic_validation,
    worker_profiler,
)

VARIANTS_DIRNAME = "variants"  # under the state directory: <name>/<precision>.onnx
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")  # model and task names (":" is reserved)


@dataclass(frozen=True)
class Task:
    """A task clients can name in model-less queries."""

    name: str  # e.g. "digits"
    description: str  # one line for listings
    models: int  # registered models serving it


@dataclass(frozen=True)
class TaskModel:
    """A model registered for a task (the FP32 original its variants come from)."""

    name: str  # model name; its variants are "<name>:<precision>"
    task: str  # task it serves
    source_path: str  # the file given to `register`
    config: ModelConfig  # serving configuration of the FP32 variant
    validation: str  # validation .npz path, or "synthetic"
    created_at: float  # unix seconds of registration


# --------------------------------------------------------------------------- tasks


def list_tasks(registry: Registry) -> list[Task]:
    rows = registry.query(
        "SELECT t.name, t.description, COUNT(m.name) FROM tasks t"
        " LEFT JOIN task_models m ON m.task = t.name GROUP BY t.name ORDER BY t.name"
    )
    return [Task(str(n), str(d), int(c)) for n, d, c in rows]


def add_task(registry: Registry, name: str, description: str = "", now: float | None = None) -> Task:
    """Make a task known (idempotent)."""
    _check_name(name, "task")
    registry.execute(
        "INSERT OR IGNORE INTO tasks (name, description, created_at) VALUES (?, ?, ?)",
        (name, description, time.time() if now is None else now),
    )
    return next(t for t in list_tasks(registry) if t.name == name)


def _check_task(registry: Registry, task: str, create: bool) -> None:
    _check_name(task, "task")
    names = [t.name for t in list_tasks(registry)]
    if task not in names and not create:
        raise InvalidArgumentError(
            f"unknown task {task!r} (known: {', '.join(names) or 'none'}; --new-task adds one)"
        )


# --------------------------------------------------------------------------- register


def register(
    registry: Registry,
    model_path: Path,
    task: str,
    name: str,
    validation: Path | None = None,
    *,
    create_task: bool = False,
    profiler: VariantProfiler | None = None,
    profile: bool = True,
    precisions: Sequence[Precision] = ALL_PRECISIONS,
    max_batch: int | None = None,
    now: float | None = None,
) -> list[Variant]:
    """Register an FP32 ONNX model for a task: generate, measure and store its variants.

    `profiler` defaults to worker_profiler() (real worker processes on CPU slices); pass
    `profile=False` to store variants without latency profiles. Returns the stored variants.
    """
    model_path = Path(model_path)
    config = _checked_config(registry, model_path, task, name, create_task, precisions, max_batch)
    data = load_validation(Path(validation), config) if validation is not None else synthetic_validation(config)
    if profile and profiler is None:
        profiler = worker_profiler(ProfileSettings())
    root = registry.path.parent / VARIANTS_DIRNAME
    final = root / name
    work = Scratch(root, name)  # swept at a later start if this process is killed
    scratch = work.path
    moved = False
    try:
        files = generate_files(model_path, scratch, data, precisions)
        variants = build_variants(name, task, config, files, data, profiler if profile else None)
        variants = [_moved(v, scratch, final) for v in variants]
        fp32_config = replace(config, path=str(final / "fp32.onnx"))
        stamp = time.time() if now is None else now
        work.sync()  # the files are on disk before the rows that name them commit
        with registry.transaction() as run:
            if run("SELECT 1 FROM task_models WHERE name = ?", (name,)):
                raise InvalidArgumentError(f"model {name!r} is already registered (names are unique)")
            _insert(run, TaskModel(name, task, str(model_path.resolve()), fp32_config, data.source, stamp), variants)
            if final.exists():  # left by a crash between rename and commit: not registered
                shutil.rmtree(final)
            work.commit_to(final)
            moved = True
        return variants
    except ModelplexError:
        raise
    except Exception as e:  # noqa: BLE001 (quantizers and ORT raise anything; report one line)
        raise InvalidArgumentError(
            f"registering {name!r} from {model_path} failed: {type(e).__name__}: {_one_line(str(e))}"
        ) from None
    finally:
        work.close()
        if moved and get_task_model(registry, name) is None:  # renamed, then the commit failed
            shutil.rmtree(final, ignore_errors=True)


def _checked_config(
    registry: Registry, model_path: Path, task: str, name: str, create_task: bool,
    precisions: Sequence[Precision], max_batch: int | None,
) -> ModelConfig:
    """The FP32 model's serving configuration, after every check a registration needs."""
    _check_name(name, "model")
    _check_task(registry, task, create_task)
    if get_task_model(registry, name) is not None:
        raise InvalidArgumentError(f"model {name!r} is already registered (names are unique)")
    if Precision.FP32 not in precisions:
        raise InvalidArgumentError("precisions must include fp32 (the reference of the others)")
    graph = inspect_onnx(model_path)  # InvalidArgumentError when not a loadable ONNX file
    if not graph.batchable:
        raise InvalidArgumentError(
            f"{model_path}: every input and output needs a dynamic first (batch) dimension"
        )
    return build_model_config(
        ModelId(name, "1"), model_path, graph,
        overrides=ServingOverrides(task=task, max_batch_size=max_batch),
    )


def _insert(run: Callable[[str, Sequence[object]], object], m: TaskModel, variants: list[Variant]) -> None:
    """The rows of one registration (inside its transaction)."""
    run("INSERT OR IGNORE INTO tasks (name, description, created_at) VALUES (?, '', ?)", (m.task, m.created_at))
    run(
        "INSERT INTO task_models (name, task, source_path, config, validation, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (m.name, m.task, m.source_path, json.dumps(model_config_to_json(m.config)), m.validation, m.created_at),
    )
    for v in variants:
        run(
            "INSERT INTO variants (name, model, task, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (v.name, m.name, m.task, json.dumps(variant_to_json(v)), m.created_at),
        )
        if v.profile is not None:  # also where the planner and `modelplex profile` look
            p = v.profile
            run(
                "INSERT INTO profiles (model, hardware, device_kind, data, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, hardware, device_kind)"
                " DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
                (p.model, p.hardware, p.device_kind, json.dumps(p.to_json()), m.created_at),
            )


def _moved(v: Variant, scratch: Path, final: Path) -> Variant:
    return replace(v, path=str(final / Path(v.path).relative_to(scratch)))


# --------------------------------------------------------------------------- queries


def get_task_model(registry: Registry, name: str) -> TaskModel | None:
    rows = registry.query(
        "SELECT name, task, source_path, config, validation, created_at FROM task_models WHERE name = ?", (name,)
    )
    if not rows:
        return None
    n, task, src, cfg, val, at = rows[0]
    return TaskModel(str(n), str(task), str(src), model_config_from_json(json.loads(cfg)), str(val), float(at))


def list_variants(registry: Registry, task: str | None = None, model: str | None = None) -> list[Variant]:
    """Stored variants (of one task and/or model), by model then precision order."""
    query = "SELECT data FROM variants WHERE 1=1"
    args: list[str] = []
    if task is not None:
        query += " AND task = ?"
        args.append(task)
    if model is not None:
        query += " AND model = ?"
        args.append(model)
    rows = registry.query(query, args)
    order = {p: i for i, p in enumerate(Precision)}
    found = [variant_from_json(json.loads(r[0])) for r in rows]
    return sorted(found, key=lambda v: (v.task, v.model, order[v.precision]))


def get_variant(registry: Registry, name: str) -> Variant:
    rows = registry.query("SELECT data FROM variants WHERE name = ?", (name,))
    row = rows[0] if rows else None
    if row is None:
        raise NotFoundError(f"variant {name!r} is not registered")
    return variant_from_json(json.loads(row[0]))


# --------------------------------------------------------------------------- encoding


def variant_to_json(v: Variant) -> dict[str, Any]:
    return {
        "name": v.name, "model": v.model, "task": v.task, "precision": v.precision.value,
        "device_kind": v.device_kind, "max_batch": v.max_batch, "path": v.path,
        "size_bytes": v.size_bytes, "accuracy": v.accuracy, "accuracy_kind": v.accuracy_kind,
        "validation": v.validation, "validation_samples": v.validation_samples,
        "memory_mb": v.memory_mb, "load_s": v.load_s,
        "profile": v.profile.to_json() if v.profile is not None else None,
    }


def variant_from_json(d: dict[str, Any]) -> Variant:
    def opt(key: str) -> float | None:
        return None if d.get(key) is None else float(d[key])

    return Variant(
        name=str(d["name"]), model=str(d["model"]), task=str(d["task"]),
        precision=Precision(d["precision"]), device_kind=str(d["device_kind"]),
        max_batch=int(d["max_batch"]), path=str(d["path"]), size_bytes=int(d["size_bytes"]),
        accuracy=opt("accuracy"), accuracy_kind=str(d["accuracy_kind"]),
        validation=str(d["validation"]), validation_samples=int(d["validation_samples"]),
        memory_mb=opt("memory_mb"), load_s=opt("load_s"),
        profile=Profile.from_json(d["profile"]) if d.get("profile") else None,
    )


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name or ""):
        raise InvalidArgumentError(
            f"invalid {what} name {name!r}: use letters, digits, '_', '-', '.' (not first), at most 128"
        )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def to_candidates(variants: Sequence[Variant], slice_size: int, loaded: Sequence[str] = ()) -> list[Candidate]:
    """Selection candidates from stored variants on a slice of `slice_size` (profiled ones only;
    `loaded` names the variants a worker holds now, the others count their load time)."""
    return [
        Candidate(
            variant=v.name, model=v.model, task=v.task, accuracy=v.accuracy, profile=v.profile,
            slice_size=slice_size, loaded=v.name in loaded, load_s=v.load_s or 0.0,
        )
        for v in variants
        if v.profile is not None and v.profile.points
    ]
