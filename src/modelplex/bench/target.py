"""The server a bench loads: a running one (`url:`) or `modelplex serve` started on a free
loopback port for the bench's length (`repository:`); the models checked to exist on it and
their requests built from their metadata (GET /v2/models/NAME: shapes and datatypes, dynamic
dimensions as 1)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from modelplex.bench.config import BenchConfig, ModelLoad, fail
from modelplex.bench.http import get_json, http_request, infer_body_binary, infer_body_json
from modelplex.core.errors import NotFoundError, UnavailableError
from modelplex.core.tensors import DataType
from modelplex.profiling.inputs import random_array

log = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """Where the load goes; `proc` is the server this bench started (None: someone else's)."""

    host: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_repository(config: BenchConfig) -> None:
    """Before starting a server: every named model has a folder in the repository."""
    if config.repository is None:
        return
    for i, m in enumerate(config.models):
        if not m.is_task and not (config.repository / m.name).is_dir():
            raise fail(f"models[{i}].name", f"model {m.name!r} not found in repository {config.repository}")


def open_target(config: BenchConfig, workdir: Path) -> Target:
    if config.url is not None:
        parts = urlsplit(config.url)
        target = Target(parts.hostname or "127.0.0.1", parts.port or 80)
        get_json(f"{target.url}/v2/health/ready")
        return target
    if config.repository is None:
        raise fail("url", "no target")
    return start_server(config.repository, config.serve_args, workdir)


def start_server(repository: Path, extra: tuple[str, ...], workdir: Path) -> Target:
    """`modelplex serve` as a subprocess on a free loopback port, its state and log under `workdir`."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))
    cmd = [sys.executable, "-m", "modelplex.cli", "serve", "--repository", str(repository), "--host", "127.0.0.1",
           "--http-port", str(port), "--grpc-port", "0", "--state-dir", str(state), *extra]
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1")
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    target = Target("127.0.0.1", port, proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    log.info("started modelplex serve (pid %d) on port %d; log %s", proc.pid, port, log_path)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UnavailableError(f"the server exited with code {proc.returncode}; see {log_path}")
        try:
            get_json(f"{target.url}/v2/health/ready", timeout_s=2.0)
            return target
        except (UnavailableError, NotFoundError):
            time.sleep(0.2)
    target.stop()
    raise UnavailableError(f"the server was not ready in {START_TIMEOUT_S:g} s; see {log_path}")


def metadata(target: Target, config: BenchConfig) -> list[dict[str, Any]]:
    """Each model's (or task's first answering variant's) metadata; a missing one is a config error."""
    out = []
    tasks: dict[str, Any] | None = None
    for i, m in enumerate(config.models):
        if not m.is_task:
            try:
                out.append(get_json(f"{target.url}/v2/models/{m.name}"))
            except NotFoundError:
                raise fail(f"models[{i}].name", f"model {m.name!r} not found on the server at {target.url}") from None
            continue
        tasks = tasks if tasks is not None else get_json(f"{target.url}/v2/tasks")
        out.append(_task_metadata(target, tasks or {}, m, i))
    return out


def _task_metadata(target: Target, tasks: dict[str, Any], m: ModelLoad, i: int) -> dict[str, Any]:
    if m.name not in tasks.get("tasks", []):
        raise fail(f"models[{i}].task", f"task {m.name!r} not registered on the server at {target.url} "
                   f"(tasks: {', '.join(tasks.get('tasks', [])) or 'none'})")
    for variant, info in sorted(tasks.get("variants", {}).items()):
        if info.get("task") != m.name:
            continue
        try:
            doc: dict[str, Any] = get_json(f"{target.url}/v2/models/{variant}")
            return doc
        except (NotFoundError, UnavailableError):
            continue
    raise fail(f"models[{i}].task", f"no variant of task {m.name!r} answers GET /v2/models/NAME for its inputs")


def build_request(target: Target, config: BenchConfig, m: ModelLoad, meta: dict[str, Any], seed: int) -> bytes:
    """The pre-encoded request of one model: random inputs shaped by its metadata."""
    rng = np.random.default_rng(seed)
    inputs = []
    for t in meta.get("inputs", []):
        shape = tuple(1 if int(d) < 0 else int(d) for d in t["shape"])
        inputs.append((str(t["name"]), str(t["datatype"]), random_array(rng, DataType.parse(t["datatype"]), shape)))
    params: dict[str, Any] = {}
    if m.is_task:
        path = f"/v2/tasks/{m.name}/infer"
        if m.slo_ms is not None:
            params["latency_ms"] = m.slo_ms
        if m.min_accuracy is not None:
            params["min_accuracy"] = m.min_accuracy
    else:
        path = f"/v2/models/{m.name}/infer"
    if config.protocol == "json":
        return http_request(target.host, target.port, path, infer_body_json(inputs, params))
    body, head = infer_body_binary(inputs, params)
    return http_request(target.host, target.port, path, body, head)
