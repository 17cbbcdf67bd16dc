"""Scratch folders for work that commits by renaming into place (`modelplex register` writes its
variant files in one), made durable before the commit, and swept when a process died with one.

Each scratch folder holds a lock file, locked (flock) by the process that made it for as long as
it works there; the kernel drops the lock when that process ends, kill -9 included. A sweep
removes the `.tmp-*` folders whose lock it can take, so it never removes a folder another
process is still filling, and one without a lock file only once it is older than a grace period
(a folder being made this instant has none yet).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = ".tmp-"  # scratch folder names start so
LOCK_NAME = ".owner.lock"  # inside a scratch folder, locked by its maker
GRACE_S = 60.0  # a scratch folder without its lock file younger than this may be being made


class Scratch:
    """A locked scratch folder under `root`; `commit_to` renames it into place, `close` removes
    what is left. Use as a context manager."""

    def __init__(self, root: Path, stem: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root  # the folder it lives in (and its final form)
        self.path = root / f"{PREFIX}{stem}-{uuid.uuid4().hex[:8]}"  # where the work is written
        self.path.mkdir()
        self._fd: int | None = os.open(self.path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # never contended: the folder name is new

    def sync(self) -> None:
        """Flush every file in the folder, then the folder itself, to disk."""
        for dirpath, _, names in os.walk(self.path):
            for name in names:
                _fsync(Path(dirpath) / name, os.O_RDONLY)
            _fsync(Path(dirpath), os.O_RDONLY | os.O_DIRECTORY)

    def commit_to(self, final: Path) -> None:
        """Rename the folder to `final` (in the same root) and make the rename durable; the lock
        file does not go along."""
        (self.path / LOCK_NAME).unlink()
        self.path.rename(final)
        _fsync(self.root, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep(root: Path, now: float | None = None) -> list[Path]:
    """Remove the scratch folders in `root` and its direct subfolders that no live process owns;
    returns them (one log line says which)."""
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    found = [*root.glob(PREFIX + "*"), *root.glob("*/" + PREFIX + "*")]
    removed = [p for p in sorted(found) if p.is_dir() and not _in_use(p, now)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    if removed:
        log.info("removed %d scratch folder(s) left by interrupted work: %s", len(removed),
                 ", ".join(str(p.relative_to(root)) for p in removed))
    return removed


def _in_use(path: Path, now: float) -> bool:
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR)  # never O_CREAT: a missing lock stays missing
    except FileNotFoundError:
        try:
            return now - path.stat().st_mtime < GRACE_S
        except OSError:
            return True  # gone meanwhile: nothing to remove
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
