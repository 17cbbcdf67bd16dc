"""Profiles in the registry (SQLite, keyed by model, hardware signature and device kind), their
JSON export/import, and the interference coefficients per hardware signature (a JSON file)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelplex.core.errors import InvalidArgumentError
from modelplex.core.profile import Profile, ProfilePoint
from modelplex.repository.store import Registry

EXPORT_FORMAT = "modelplex-profiles/1"  # "format" field of an export; bumped on incompatible change
INTERFERENCE_FILENAME = "interference.json"  # in the state directory: hardware -> fitted model


def check_writable(state_dir: Path) -> None:
    """Fail early, with one line, when the state directory cannot hold the registry."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        probe = state_dir / f".modelplex-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InvalidArgumentError(f"state directory {state_dir} is not writable: {e.strerror or e}") from None


def merge(old: Profile | None, new: Profile) -> Profile:
    """Points of `new` replace those of `old` at the same (slice, batch); the rest are kept."""
    if old is None:
        return new
    fresh = {(p.slice_size, p.batch) for p in new.points}
    kept = [p for p in old.points if (p.slice_size, p.batch) not in fresh]
    points = tuple(sorted([*kept, *new.points], key=lambda p: (p.slice_size, p.batch)))
    return replace(
        new,
        points=points,
        memory_mb=max(old.memory_mb, new.memory_mb),
        load_s=new.load_s or old.load_s,
        features={**old.features, **new.features},
    )


class ProfileStore:
    """Profiles of this registry; get/put one Profile per (model, hardware, device kind)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry  # the SQLite registry under the state directory

    def get(self, model: str, hardware: str, device_kind: str) -> Profile | None:
        data = self.registry.get_profile(model, hardware, device_kind)
        return Profile.from_json(data) if data else None

    def put(self, profile: Profile) -> None:
        self.registry.put_profile(profile.model, profile.hardware, profile.device_kind, profile.to_json())

    def merge_in(self, profile: Profile) -> Profile:
        merged = merge(self.get(profile.model, profile.hardware, profile.device_kind), profile)
        self.put(merged)
        return merged

    def known_points(self, model: str, hardware: str, device_kind: str) -> set[tuple[int, int]]:
        prof = self.get(model, hardware, device_kind)
        return {(p.slice_size, p.batch) for p in prof.points} if prof else set()


def export_json(path: Path, profiles: Sequence[Profile], metadata: dict[str, Any] | None = None) -> None:
    doc: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "created_unix_s": time.time(),
        **(metadata or {}),
        "profiles": [p.to_json() for p in profiles],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def read_export(path: Path) -> list[Profile]:
    """Profiles of an export file (or of a bare JSON list of Profile.to_json objects)."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise InvalidArgumentError(f"cannot read profiles file {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"profiles file {path} is not JSON: {e.msg} at line {e.lineno}") from None
    items = doc.get("profiles") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InvalidArgumentError(f"profiles file {path} has no 'profiles' list")
    try:
        return [Profile.from_json(item) for item in items]
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise InvalidArgumentError(f"profiles file {path} has a malformed profile: {type(e).__name__}: {e}") from None


def import_profiles(store: ProfileStore, profiles: Iterable[Profile]) -> list[Profile]:
    return [store.merge_in(p) for p in profiles]


def load_interference(state_dir: Path) -> dict[str, dict[str, Any]]:
    path = state_dir / INTERFERENCE_FILENAME
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def save_interference(state_dir: Path, hardware: str, model: dict[str, Any]) -> Path:
    """Store a fitted interference model ({"kind": "linear", "coeffs": [...], ...}) for a hardware."""
    data = load_interference(state_dir)
    data[hardware] = model
    path = state_dir / INTERFERENCE_FILENAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path


def point_key(p: ProfilePoint) -> tuple[int, int]:
    return (p.slice_size, p.batch)
