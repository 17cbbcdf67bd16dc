"""Scratch folders: a process killed with -9 leaves one, the next Registry opened removes it (and
says so), a folder a live process still owns is kept, and a registration leaves none."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelplex.repository.registry_variants import VARIANTS_DIRNAME, register
from modelplex.repository.scratch import GRACE_S, LOCK_NAME, PREFIX, Scratch, sweep
from modelplex.repository.store import Registry

OWNER = """
import sys, time
from pathlib import Path
from modelplex.repository.scratch import Scratch
work = Scratch(Path(sys.argv[1]), "m")
(work.path / "fp32.onnx").write_bytes(b"half written")
print(work.path, flush=True)
time.sleep(120)
"""


def owner(root: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process that made a scratch folder under `root` and works in it (sleeps)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the owner process did not start"
    return proc, Path(line)


def test_kill_9_leftover_is_swept_when_the_registry_opens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    proc, path = owner(state / VARIANTS_DIRNAME)
    try:
        assert path.name.startswith(PREFIX) and (path / LOCK_NAME).exists()
        Registry(state).close()
        assert path.is_dir()  # its owner still works there
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with caplog.at_level(logging.INFO, logger="modelplex"):
        Registry(state).close()
    assert not path.exists()
    lines = [r.getMessage() for r in caplog.records if "scratch" in r.getMessage()]
    assert lines == [f"removed 1 scratch folder(s) left by interrupted work: {VARIANTS_DIRNAME}/{path.name}"]
    caplog.clear()
    Registry(state).close()  # nothing left: nothing said
    assert not [r for r in caplog.records if "scratch" in r.getMessage()]


def test_a_folder_without_its_lock_goes_only_after_the_grace_period(tmp_path: Path) -> None:
    bare = tmp_path / VARIANTS_DIRNAME / f"{PREFIX}old-1234"
    bare.mkdir(parents=True)
    other = tmp_path / VARIANTS_DIRNAME / "kept"  # not a scratch folder
    other.mkdir()
    now = time.time()
    assert sweep(tmp_path, now=now) == []  # may be being made right now
    assert sweep(tmp_path, now=now + GRACE_S + 1) == [bare]
    assert not bare.exists() and other.is_dir()


def test_a_scratch_folder_of_this_process_is_kept_until_closed(tmp_path: Path) -> None:
    with Scratch(tmp_path, "x") as work:
        (work.path / "f").write_text("data")
        work.sync()
        assert sweep(tmp_path, now=time.time() + GRACE_S + 1) == []
        assert work.path.is_dir()
    assert not work.path.exists()


def test_register_commits_without_leftovers(tmp_path: Path, example_repo: Path) -> None:
    with Registry(tmp_path / "state") as registry:
        register(registry, example_repo / "mlp" / "1" / "model.onnx", "tabular-classification", "mlp", profile=False)
    variants = tmp_path / "state" / VARIANTS_DIRNAME
    assert [p.name for p in variants.iterdir()] == ["mlp"]
    assert sorted(p.name for p in (variants / "mlp").iterdir()) == ["fp16.onnx", "fp32.onnx", "int8-static.onnx"]
