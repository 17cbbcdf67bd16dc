"""Start a real `modelplex serve` process on free loopback ports for integration tests."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplex.bench.target import free_port


@dataclass
class RunningServer:
    """A live server process and where to reach it."""

    proc: subprocess.Popen[bytes]  # the `modelplex serve` process
    http_port: int  # KServe v2 REST port
    grpc_port: int  # KServe v2 gRPC port
    log_path: Path  # its combined stdout/stderr
    ssl_context: ssl.SSLContext | None = None  # set when it serves TLS: a context that trusts it
    token: str | None = None  # sent as a bearer token by request() unless headers carry one

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def request(self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout_s: float = 60.0) -> tuple[int, bytes]:
        """GET (or POST `body`); HTTP errors are returned as (status, body), not raised."""
        headers = dict(headers or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        scheme = "https" if self.ssl_context is not None else "http"
        req = urllib.request.Request(f"{scheme}://{self.http_url}{path}", data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s, context=self.ssl_context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str) -> Any:
        status, raw = self.request(path)
        assert status == 200, raw
        return json.loads(raw)

    def post_json(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        status, raw = self.request(path, body, headers)
        return status, json.loads(raw or b"{}")

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


def start_server(
    repository: Path, state_dir: Path, extra: list[str] | None = None, timeout_s: float = 90.0,
    env_extra: dict[str, str] | None = None, tls: tuple[Path, Path] | None = None, token: str | None = None,
) -> RunningServer:
    """`tls` (cert, key): serve TLS, and talk to it trusting the cert; `token`: the bearer token
    RunningServer.request sends (the server's own token flags go in `extra`)."""
    http_port, grpc_port = free_port(), free_port()
    log_path = state_dir / "server.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    cmd = [
        sys.executable, "-m", "modelplex.cli", "serve",
        "--repository", str(repository),
        "--http-port", str(http_port),
        "--grpc-port", str(grpc_port),
        "--state-dir", str(state_dir),
        *(["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []),
        *(extra or []),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    context = ssl.create_default_context(cafile=str(tls[0])) if tls else None
    server = RunningServer(proc, http_port, grpc_port, log_path, context, token)
    scheme = "https" if tls else "http"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{scheme}://{server.http_url}/v2/health/live", timeout=1, context=context) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not come up in {timeout_s} s:\n{server.log()}")
