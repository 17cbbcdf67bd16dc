"""Cheap KServe v2 HTTP clients for load generation: pre-encoded requests on keep-alive
connections parsed by httptools, so that on a small machine the measurement is of the server.

A connection returns the HTTP status of each answer and keeps the body of a non-200 answer (the
server's error message, which says why it refused); bodies of 200 answers are dropped unread.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import httptools
import numpy as np
import orjson

from modelplex.core.errors import NotFoundError, UnavailableError


def infer_body_json(inputs: list[tuple[str, str, np.ndarray]], parameters: dict[str, Any] | None = None) -> bytes:
    """A JSON infer request: (name, KServe datatype, array) per input."""
    doc: dict[str, Any] = {
        "inputs": [{"name": n, "shape": list(a.shape), "datatype": dt, "data": _json_data(a)} for n, dt, a in inputs],
        "parameters": {"binary_data_output": True, **(parameters or {})},
    }
    return orjson.dumps(doc)


def _json_data(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if array.dtype == object:
        return [x.decode() if isinstance(x, bytes) else str(x) for x in flat]
    return list(flat.tolist())


def infer_body_binary(inputs: list[tuple[str, str, np.ndarray]],
                      parameters: dict[str, Any] | None = None) -> tuple[bytes, int]:
    """A binary-extension infer request; returns (body, JSON header length)."""
    heads, raws = [], []
    for name, dt, array in inputs:
        raw = _raw(array)
        heads.append({"name": name, "shape": list(array.shape), "datatype": dt, "parameters": {"binary_data_size": len(raw)}})
        raws.append(raw)
    head = orjson.dumps({"inputs": heads, "parameters": {"binary_data_output": True, **(parameters or {})}})
    return head + b"".join(raws), len(head)


def _raw(array: np.ndarray) -> bytes:
    if array.dtype == object:  # BYTES: 4-byte little-endian length before each element
        return b"".join(len(x).to_bytes(4, "little") + x for x in (bytes(v) for v in array.reshape(-1)))
    return np.ascontiguousarray(array).tobytes()


def http_request(host: str, port: int, path: str, body: bytes, header_len: int | None = None) -> bytes:
    """A whole pre-encoded POST (request line, headers and body)."""
    headers = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/octet-stream"]
    if header_len is not None:
        headers.append(f"Inference-Header-Content-Length: {header_len}")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class HttpConn(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection that sends one pre-encoded request at a time."""

    MAX_ERROR_BODY = 4096  # bytes of an error answer's body kept

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False  # the server closed the connection (e.g. its keep-alive timeout)
        self.error_body = b""  # the body of the last non-200 answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("HttpConn needs a stream transport")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.error_body = b""

    def on_body(self, body: bytes) -> None:
        if self.parser.get_status_code() != 200 and len(self.error_body) < self.MAX_ERROR_BODY:
            self.error_body += body[: self.MAX_ERROR_BODY - len(self.error_body)]

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def send(self, raw: bytes) -> int:
        """Send `raw` and return the answer's HTTP status."""
        if self.transport is None or self.closed:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def error_message(self) -> str:
        """The `error` of the last non-200 answer's JSON body (its raw text when not JSON)."""
        try:
            doc = orjson.loads(self.error_body)
        except orjson.JSONDecodeError:
            return self.error_body.decode(errors="replace")
        return str(doc.get("error", "")) if isinstance(doc, dict) else str(doc)


class ConnectionPool:
    """Keep-alive connections to one server shared by open-loop requests: a request takes an idle
    connection or opens a new one; a connection whose answer never came is discarded, not reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[HttpConn] = []
        self.opened = 0  # connections opened so far

    async def acquire(self) -> HttpConn:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        _, conn = await asyncio.get_running_loop().create_connection(HttpConn, self.host, self.port)
        self.opened += 1
        return conn

    def release(self, conn: HttpConn) -> None:
        if not conn.closed:
            self.idle.append(conn)

    def discard(self, conn: HttpConn) -> None:
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()

    async def fill(self, n: int) -> None:
        """Open connections up to `n` idle ones (so that a run's start does not pay for them)."""
        conns = [await self.acquire() for _ in range(max(0, n - len(self.idle)))]
        for c in conns:
            self.release(c)

    def close(self) -> None:
        for conn in self.idle:
            self.discard(conn)
        self.idle.clear()


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    """GET a JSON document; NotFoundError on 404, UnavailableError when the server cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotFoundError(f"{url}: not found") from None
        raise UnavailableError(f"{url}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise UnavailableError(f"{url}: {exc}") from None
