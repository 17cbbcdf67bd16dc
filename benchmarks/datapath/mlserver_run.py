"""MLServer's configurations for benchmarks/datapath/run.py: the same model behind MLServer's
KServe v2 endpoints, in its own virtual environment, with 0, 1 and 2 parallel inference workers;
every configuration is reported, and the best is what modelplex is compared with."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
from argparse import Namespace
from pathlib import Path
from typing import Any, Callable

from server import free_port

log = logging.getLogger("datapath")
HERE = Path(__file__).resolve().parent
WORKERS = (0, 1, 2)  # parallel_workers settings tried


def _start(venv: Path, folder: Path, http_port: int, grpc_port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONPATH=str(HERE), MLSERVER_ORT_THREADS="1")
    out = open(folder / "mlserver.log", "wb")
    proc = subprocess.Popen([str(venv / "bin" / "mlserver"), "start", str(folder)], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlserver exited: {(folder / 'mlserver.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/small_cnn/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("mlserver did not come up in 120 s")


def _write_settings(folder: Path, model_path: str, workers: int, http_port: int, grpc_port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({
        "http_port": http_port, "grpc_port": grpc_port, "metrics_port": free_port(), "host": "127.0.0.1",
        "parallel_workers": workers, "debug": False, "metrics_endpoint": None,
    }))
    model = folder / "small_cnn"
    model.mkdir(exist_ok=True)
    (model / "model-settings.json").write_text(json.dumps({
        "name": "small_cnn", "implementation": "mlserver_model.OnnxModel", "parameters": {"uri": model_path},
    }))


def mlserver_points(args: Namespace, root: Path, model_path: str, measure_point: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    venv = Path(args.mlserver)
    rows: list[dict[str, Any]] = []
    for workers in WORKERS:
        folder = root / f"mlserver-{workers}"
        http_port, grpc_port = free_port(), free_port()
        _write_settings(folder, model_path, workers, http_port, grpc_port)
        proc = _start(venv, folder, http_port, grpc_port)
        try:
            import psutil

            pids = {"frontend": [proc.pid], "workers": [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]}
            target = {"host": "127.0.0.1", "port": http_port, "grpc": f"127.0.0.1:{grpc_port}", "model": "small_cnn"}
            for conc in args.concurrency:
                row = measure_point(target, "http-json", conc, args.duration, 1.0, None, pids)
                row["client"] = f"http-json, parallel_workers={workers}"
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return rows
