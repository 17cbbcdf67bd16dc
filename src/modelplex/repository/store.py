"""The SQLite registry of what has been registered (models, tasks, variants, profiles).
The repository folders themselves are read by repository.folders."""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplex.core.errors import InvalidArgumentError, NotFoundError
from modelplex.core.model import ModelConfig, ModelId
from modelplex.repository.encoding import model_config_from_json, model_config_to_json
from modelplex.repository.scratch import sweep

# --------------------------------------------------------------------------- registry


UNLOADED = "unloaded"  # reason of a model unloaded over the API: it stays unloaded across restarts


class ModelState(enum.Enum):
    """Repository-index states, spelled as Triton reports them."""

    READY = "READY"  # loaded and serving
    UNAVAILABLE = "UNAVAILABLE"  # failed to load, or unloaded
    LOADING = "LOADING"  # a load is in progress
    UNLOADING = "UNLOADING"  # draining before unload


@dataclass(frozen=True)
class RegisteredModel:
    """One registered model version as the registry stores it."""

    model: ModelId  # name and version
    path: str  # the ONNX file ("" when it never loaded)
    task: str | None  # task served, for model-less queries
    config: ModelConfig | None  # None for a model that failed before its config was known
    state: ModelState  # current state
    reason: str  # why it is in this state ("" when READY)
    updated_at: float  # unix seconds of the last change


# Schema migrations, applied in order; schema_version holds how many have run. A later issue
# appends (never edits) entries, e.g. a variants table.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE models (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        path TEXT NOT NULL,
        task TEXT,
        config TEXT,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE profiles (
        model TEXT NOT NULL,
        hardware TEXT NOT NULL,
        device_kind TEXT NOT NULL,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (model, hardware, device_kind)
    );
    """,
    # 2: model-less serving (repository/registry_variants.py): tasks, registered models, variants.
    """
    CREATE TABLE tasks (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    INSERT INTO tasks (name, description, created_at) VALUES
        ('image-classification', 'images to class scores', 0),
        ('tabular-classification', 'feature vectors to class scores', 0),
        ('text-embedding', 'token ids to an embedding', 0),
        ('digits', '8x8 handwritten digits (scikit-learn) to 10 class scores', 0);
    CREATE TABLE task_models (
        name TEXT PRIMARY KEY,
        task TEXT NOT NULL REFERENCES tasks (name),
        source_path TEXT NOT NULL,
        config TEXT NOT NULL,
        validation TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE variants (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL REFERENCES task_models (name),
        task TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX variants_by_task ON variants (task);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)  # the version this code writes
DB_FILENAME = "modelplex.db"  # inside the state directory


Rows = list[tuple[Any, ...]]  # rows of one SQL statement


class Registry:
    """Registered models (and measured profiles) persisted in SQLite under the state directory.
    Opening it removes scratch folders that killed registrations left there (repository.scratch).

    Thread-safe: one connection guarded by a lock, since frontends call from several threads.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_FILENAME
        self._lock = threading.Lock()
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # WAL: readers never block the writer; NORMAL sync is durable enough for metadata.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            sweep(Path(state_dir))  # scratch folders of registrations killed midway
        except (OSError, sqlite3.Error) as e:
            raise InvalidArgumentError(
                f"state directory {state_dir} is not writable: {' '.join(str(e).split())}"
            ) from None

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"database schema {current} is newer than this modelplex ({SCHEMA_VERSION})"
            )
        for version in range(current, SCHEMA_VERSION):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("DELETE FROM schema_version")
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- models

    def upsert(
        self,
        model: ModelId,
        path: str,
        config: ModelConfig | None,
        state: ModelState = ModelState.READY,
        reason: str = "",
        now: float | None = None,
    ) -> RegisteredModel:
        record = RegisteredModel(
            model=model,
            path=path,
            task=config.task if config else None,
            config=config,
            state=state,
            reason=reason,
            updated_at=time.time() if now is None else now,
        )
        blob = json.dumps(model_config_to_json(config)) if config else None
        with self._lock:
            self._db.execute(
                "INSERT INTO models (name, version, path, task, config, state, reason, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name, version) DO UPDATE SET path=excluded.path,"
                " task=excluded.task, config=excluded.config, state=excluded.state,"
                " reason=excluded.reason, updated_at=excluded.updated_at",
                (model.name, model.version, path, record.task, blob, state.value, reason,
                 record.updated_at),
            )
        return record

    def get(self, name: str, version: str) -> RegisteredModel | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM models WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        return _record(row) if row else None

    def list(self, name: str | None = None) -> list[RegisteredModel]:
        """All registered versions (of one model when name is given), by name then version."""
        query = f"SELECT {_COLUMNS} FROM models"
        args: tuple[Any, ...] = ()
        if name is not None:
            query += " WHERE name = ?"
            args = (name,)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        records = [_record(r) for r in rows]
        return sorted(records, key=lambda r: (r.model.name, _version_key(r.model.version)))

    def set_state(
        self, name: str, version: str, state: ModelState, reason: str = "", now: float | None = None
    ) -> None:
        with self._lock:
            cur = self._db.execute(
                "UPDATE models SET state = ?, reason = ?, updated_at = ? WHERE name = ? AND version = ?",
                (state.value, reason, time.time() if now is None else now, name, version),
            )
        if cur.rowcount == 0:
            raise NotFoundError(f"model {name!r} version {version!r} is not registered")

    def unloaded(self, models: Iterable[ModelId]) -> set[str]:
        """Names of `models` whose version was unloaded over the API (and not loaded since)."""
        records = (self.get(m.name, m.version) for m in models)
        return {r.model.name for r in records
                if r is not None and r.state is ModelState.UNAVAILABLE and r.reason == UNLOADED}

    def delete(self, name: str, version: str | None = None) -> int:
        """Forget a model version (or all versions of the model); returns how many rows went."""
        with self._lock:
            if version is None:
                cur = self._db.execute("DELETE FROM models WHERE name = ?", (name,))
            else:
                cur = self._db.execute(
                    "DELETE FROM models WHERE name = ? AND version = ?", (name, version)
                )
        return cur.rowcount

    # -- profiles (filled by the profiler of a later issue)

    def put_profile(
        self, model: str, hardware: str, device_kind: str, data: dict[str, Any],
        now: float | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO profiles (model, hardware, device_kind, data, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (model, hardware, device_kind)"
                " DO UPDATE SET data=excluded.data, updated_at=excluded.updated_at",
                (model, hardware, device_kind, json.dumps(data),
                 time.time() if now is None else now),
            )

    def get_profile(self, model: str, hardware: str, device_kind: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM profiles WHERE model = ? AND hardware = ? AND device_kind = ?",
                (model, hardware, device_kind),
            ).fetchone()
        return json.loads(row[0]) if row else None

    # -- SQL for the modules of this package that keep their own tables (registry_variants)

    def query(self, sql: str, args: Sequence[object] = ()) -> Rows:
        """Rows of one read."""
        with self._lock:
            return list(self._db.execute(sql, tuple(args)).fetchall())

    def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """One write, committed at once."""
        with self._lock:
            self._db.execute(sql, tuple(args))

    @contextmanager
    def transaction(self) -> Iterator[Callable[[str, Sequence[object]], Rows]]:
        """Several statements that commit together or not at all: yields `run(sql, args) -> rows`."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")

            def run(sql: str, args: Sequence[object] = ()) -> Rows:
                return list(db.execute(sql, tuple(args)).fetchall())

            try:
                yield run
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- lifetime

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_COLUMNS = "name, version, path, task, config, state, reason, updated_at"


def _record(row: tuple[Any, ...]) -> RegisteredModel:
    name, version, path, task, blob, state, reason, updated_at = row
    return RegisteredModel(
        model=ModelId(name, version),
        path=path,
        task=task,
        config=model_config_from_json(json.loads(blob)) if blob else None,
        state=ModelState(state),
        reason=reason,
        updated_at=float(updated_at),
    )


def _version_key(version: str) -> tuple[int, int | str]:
    # Numeric versions sort numerically ("2" before "10"); anything else after, by text.
    return (0, int(version)) if version.isdigit() else (1, version)
