"""Start a real `modelplex serve` process on free loopback ports for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    """A live server process and where to reach it."""

    proc: subprocess.Popen[bytes]  # the `modelplex serve` process
    http_port: int  # KServe v2 REST port
    grpc_port: int  # KServe v2 gRPC port
    log_path: Path  # its combined stdout/stderr

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(repository: Path, state_dir: Path, extra: list[str] | None = None, timeout_s: float = 90.0) -> RunningServer:
    http_port, grpc_port = free_port(), free_port()
    log_path = state_dir / "server.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "modelplex.cli", "serve",
        "--repository", str(repository),
        "--http-port", str(http_port),
        "--grpc-port", str(grpc_port),
        "--state-dir", str(state_dir),
        *(extra or []),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = RunningServer(proc, http_port, grpc_port, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"http://{server.http_url}/v2/health/live", timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not come up in {timeout_s} s:\n{server.log()}")
