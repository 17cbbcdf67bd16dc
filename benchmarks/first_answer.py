"""Time from a clean clone to the first answer of `make run` (the examples served under the
elastic policy), cold and warm.

    .venv/bin/python benchmarks/first_answer.py [--python .venv/bin/python] [--model mlp]

Cold: `git clone` of this checkout's HEAD into a temporary folder (no state, no examples), then
`make run`: it writes the example models (and trains and registers the digits task), profiles
them with the quick preset, plans, starts the workers and serves; the clock stops at the first
200 answer to an infer request. The virtual environment is not rebuilt: `make` is told the
existing one is installed (`STAMP=` a fresh file, `PY=` this interpreter behind a wrapper that
refuses pip, the clone's `src` first on PYTHONPATH), so "cold" excludes `pip install`. Warm: `make run` again in the same clone
(examples and profiles reused). Writes benchmarks/results/first_answer.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from server import free_port  # noqa: E402

log = logging.getLogger("first_answer")
LIMIT_S = 300.0  # give up on a start after this long


def _first_answer(url: str, model: str, proc: subprocess.Popen[bytes], t0: float) -> float:
    """Seconds from t0 to the first 200 answer of an infer request (polled every 0.1 s)."""
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}).encode()
    while time.monotonic() - t0 < LIMIT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"make run exited with {proc.returncode}")
        try:
            req = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no answer within {LIMIT_S:.0f} s")


def _guarded_python(clone: Path, python: str) -> Path:
    """An interpreter wrapper that refuses `-m pip`: the environment is shared, make must not
    install into it (the wrapper is what make gets as PY, and a stamp newer than pyproject.toml
    tells it the environment is installed)."""
    wrapper = clone / ".bench-python"
    wrapper.write_text(f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "benchmark: pip refused" >&2; exit 99; fi\n'
                       f'exec {python} "$@"\n')
    wrapper.chmod(0o755)
    (clone / ".bench-installed").touch()
    return wrapper


def _make_cmd(clone: Path, python: str, http: int, grpc: int) -> list[str]:
    cmd = ["make", "run", f"PY={_guarded_python(clone, python)}", f"STAMP={clone / '.bench-installed'}",
           f"SERVE_ARGS=--http-port {http} --grpc-port {grpc}"]
    dry = subprocess.run([*cmd[:1], "-n", *cmd[1:]], cwd=clone, capture_output=True, text=True, check=True)
    if "pip" in dry.stdout:
        raise RuntimeError(f"make run would install packages; refusing:\n{dry.stdout}")
    return cmd


def _make_run(clone: Path, python: str, log_path: Path, t0: float, model: str) -> dict[str, Any]:
    http, grpc = free_port(), free_port()
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONPATH=str(clone / "src"), PYTHONUNBUFFERED="1")
    cmd = _make_cmd(clone, python, http, grpc)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            first_s = _first_answer(f"http://127.0.0.1:{http}", model, proc, t0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log_path.read_text(errors="replace")
    profiled = re.search(r"profiled (\d+) point\(s\) in ([\d.]+) s", text)
    return {
        "first_answer_s": round(first_s, 2),
        "profiled_points": int(profiled.group(1)) if profiled else 0,
        "profiling_s": float(profiled.group(2)) if profiled else 0.0,
        "examples_written": "wrote example models" in text,
        "profiles_reused": "found in the registry" in text,
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter of an installed environment (default: this one)")
    ap.add_argument("--model", default="mlp", help="example model to ask (default mlp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelplex-first-") as tmp:
        clone = Path(tmp) / "modelplex"
        t0 = time.monotonic()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        clone_s = time.monotonic() - t0
        cold = _make_run(clone, args.python, Path(tmp) / "cold.log", t0, args.model)
        cold["clone_s"] = round(clone_s, 2)
        warm = _make_run(clone, args.python, Path(tmp) / "warm.log", time.monotonic(), args.model)
    rows = [("cold (clean clone)", cold), ("warm (second start)", warm)]
    log.info("| start | first answer s | profiling s (points) | examples written | profiles reused |")
    log.info("|---|---|---|---|---|")
    for name, r in rows:
        log.info("| %s | %.1f | %.1f (%d) | %s | %s |", name, r["first_answer_s"], r["profiling_s"], r["profiled_points"],
                 "yes" if r["examples_written"] else "no", "yes" if r["profiles_reused"] else "no")
    out = HERE / "results" / "first_answer.json"
    out.write_text(json.dumps({"cold": cold, "warm": warm, "cores": len(os.sched_getaffinity(0)),
                               "note": "venv present (pip install not timed)"}, indent=1) + "\n")
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
