"""`modelplex register` / `variants` as a user runs them: tables, one-line errors, exit code 2."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelplex.cli_models import main


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-m", "modelplex.cli_models", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def db_rows(state: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the registry database, by table (rows in a stable order)."""
    con = sqlite3.connect(state / "modelplex.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        con.close()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modelplex.repository.examples import write_examples

    root = tmp_path_factory.mktemp("models")
    write_examples(root)
    return root


def test_register_then_list(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    rc = main(["register", str(repo / "mlp" / "1" / "model.onnx"), "--task", "tabular-classification",
               "--name", "mlp", "--state-dir", state, "--no-profile"])
    assert rc == 0
    assert "registered mlp for task tabular-classification: 3 variant(s)" in capsys.readouterr().out
    assert main(["variants", "tabular-classification", "--state-dir", state]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["variant", "task", "precision", "device", "accuracy"]
    assert [line.split()[0] for line in table[1:]] == ["mlp:fp32", "mlp:int8-static", "mlp:fp16"]
    assert "(agreement)" in table[1]
    assert main(["variants", "--state-dir", state]) == 0
    assert main(["variants", "digits", "--state-dir", state]) == 0
    assert "no variants registered for task digits" in capsys.readouterr().out


def test_bad_registrations_one_line_exit_2(repo: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    mlp = str(repo / "mlp" / "1" / "model.onnx")
    assert main(["register", mlp, "--task", "tabular-classification", "--name", "mlp",
                 "--state-dir", str(state), "--no-profile"]) == 0
    db_before = db_rows(state)
    assert len(db_before["variants"]) == 3 and len(db_before["task_models"]) == 1  # a snapshot worth comparing
    files_before = sorted(p.name for p in (state / "variants").rglob("*"))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, inputs=np.zeros((4, 10), np.float32))
    junk = tmp_path / "junk.onnx"
    junk.write_text("not onnx")
    cases = {
        "not a loadable ONNX model": [str(junk), "--task", "tabular-classification", "--name", "x"],
        "unknown task 'nope'": [mlp, "--task", "nope", "--name", "x"],
        "has shape [4, 10], the model needs [N, 64]": [mlp, "--task", "tabular-classification", "--name", "x",
                                                      "--validation", str(wrong)],
        "already registered": [mlp, "--task", "tabular-classification", "--name", "mlp"],
    }
    for expected, args in cases.items():
        proc = cli("register", *args, "--state-dir", str(state), "--no-profile")
        assert proc.returncode == 2, (expected, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("modelplex: error: ") and expected in lines[0], proc.stderr
        assert sorted(p.name for p in (state / "variants").rglob("*")) == files_before
        assert db_rows(state) == db_before, expected  # a failed registration leaves the registry as it was
    from modelplex.repository.registry_variants import list_tasks, list_variants
    from modelplex.repository.store import Registry

    with Registry(state) as reg:
        assert [v.name for v in list_variants(reg)] == ["mlp:fp32", "mlp:int8-static", "mlp:fp16"]
        assert "nope" not in {t.name for t in list_tasks(reg)}
