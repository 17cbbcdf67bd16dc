"""Who may call what: bearer tokens checked in front of both frontends, and the TLS files.

Three levels of access. Health probes and /metrics are always open. Calls that change the
server (load, unload, a posted plan, and any other non-read call) need the admin token.
Inference and the reads about models need the infer token or the admin token, and are open when
no infer token is set. The HTTP side is an ASGI wrapper (`HttpGate`), the gRPC side a check the
edge makes per call (`GrpcGate`); both ask the same `Tokens.check`, which compares in constant time.
Without an admin token nothing is wrapped, so the hot path pays nothing.
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from modelplex.core.errors import InvalidArgumentError, UnauthenticatedError

ADMIN_TOKEN_ENV = "MODELPLEX_ADMIN_TOKEN"  # the admin token itself (or --admin-token-file)
INFER_TOKEN_ENV = "MODELPLEX_INFER_TOKEN"  # the infer token itself (or --infer-token-file)
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what an HTTP header and gRPC metadata can carry


class Access(enum.Enum):
    """What a call needs."""

    OPEN = "open"  # health probes and metrics
    INFER = "infer"  # inference and reads: the infer or the admin token (open without an infer token)
    ADMIN = "admin"  # changes to the server: the admin token


@dataclass(frozen=True)
class Tokens:
    """The tokens a server accepts (None: that level is open)."""

    admin: bytes | None = None  # needed by every call that changes the server
    infer: bytes | None = None  # needed (or the admin token) by inference and reads

    def __post_init__(self) -> None:
        if self.infer is not None and self.admin is None:
            raise InvalidArgumentError(
                f"an infer token needs an admin token too (--admin-token-file or {ADMIN_TOKEN_ENV}): "
                "otherwise anyone could load and unload models"
            )

    @property
    def enabled(self) -> bool:
        return self.admin is not None

    def check(self, need: Access, authorization: bytes | None) -> None:
        """Raise UnauthenticatedError unless `authorization` (the header's value) grants `need`."""
        if need is Access.OPEN or self.admin is None or (need is Access.INFER and self.infer is None):
            return
        token = _bearer(authorization)
        if token is None:
            raise UnauthenticatedError(f"this call needs the {need.value} token: send 'Authorization: Bearer <token>'")
        admin_ok = hmac.compare_digest(token, self.admin)
        infer_ok = self.infer is not None and hmac.compare_digest(token, self.infer)
        if admin_ok or (need is Access.INFER and infer_ok):
            return
        raise UnauthenticatedError(f"the bearer token is not valid for this call (it needs the {need.value} token)")


def _bearer(authorization: bytes | None) -> bytes | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    return token if scheme.lower() == b"bearer" and token else None


# --------------------------------------------------------------------------- which call needs what

_OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/metrics"})
_READ_METHODS = frozenset({"GET", "HEAD"})


def http_access(method: str, path: str) -> Access:
    """Health and metrics open; reads, infer and the repository index (a POST) need the infer
    level; every other call (load, unload, a plan, anything added later) the admin token."""
    if path in _OPEN_PATHS:
        return Access.OPEN
    if method in _READ_METHODS:
        return Access.INFER
    if method == "POST" and (path == "/v2/repository/index" or (
        path.endswith("/infer") and (path.startswith("/v2/models/") or path.startswith("/v2/tasks/")))):
        return Access.INFER
    return Access.ADMIN


_GRPC_SERVICE = "/inference.GRPCInferenceService/"
_GRPC_OPEN = frozenset({"ServerLive", "ServerReady"})
_GRPC_READ = frozenset({
    "ModelInfer", "ModelStreamInfer", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelConfig",
    "ModelStatistics", "RepositoryIndex", "SystemSharedMemoryStatus", "CudaSharedMemoryStatus",
})


def grpc_access(method: str) -> Access:
    """Like http_access for an RPC's full name: load, unload and anything not a read need admin."""
    name = method[len(_GRPC_SERVICE):] if method.startswith(_GRPC_SERVICE) else ""
    if name in _GRPC_OPEN:
        return Access.OPEN
    return Access.INFER if name in _GRPC_READ else Access.ADMIN


# --------------------------------------------------------------------------- HTTP: an ASGI wrapper

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpGate:
    """Answers 401 (with `WWW-Authenticate: Bearer`) to calls without a token that grants them;
    passes everything else to `app` untouched."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app  # the frontend (InferFastPath in front of the Starlette routes)
        self.tokens = tokens  # what it accepts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            need = http_access(scope["method"], scope["path"])
            if need is not Access.OPEN:
                authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
                try:
                    self.tokens.check(need, authorization)
                except UnauthenticatedError as exc:
                    return await _refuse(send, exc.message)
        await self.app(scope, receive, send)


async def _refuse(send: Send, message: str) -> None:
    body = orjson.dumps({"error": message})
    headers = [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="modelplex"'),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- gRPC: a check per call


class GrpcGate:
    """Ends calls without a token that grants them (`authorization: Bearer <token>` in the call
    metadata) with UNAUTHENTICATED before the servicer sees them (serving.grpc_edge asks it)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens  # what it accepts

    def denial(self, method: str, authorization: bytes | None) -> str | None:
        """Why the call to `method` (its full name) is refused, or None if it may go on."""
        need = grpc_access(method)
        if need is Access.OPEN:
            return None
        try:
            self.tokens.check(need, authorization)
        except UnauthenticatedError as exc:
            return exc.message
        return None


# --------------------------------------------------------------------------- tokens and TLS files


def read_token(path: Path | None, env: str, flag: str) -> str | None:
    """The token in file `path` (whitespace stripped), else in environment variable `env`, else
    None. An unreadable or empty file, or a set but empty variable, is an InvalidArgumentError."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(f"{flag} {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
        where = f"{flag} {path}"
    elif env in os.environ:
        text, where = os.environ[env], f"environment variable {env}"
    else:
        return None
    token = text.strip()
    if not token:
        raise InvalidArgumentError(f"{where}: the token is empty")
    if not _TOKEN_CHARS.fullmatch(token):
        raise InvalidArgumentError(f"{where}: a token is printable ASCII without spaces")
    return token


def load_tokens(admin_file: Path | None, infer_file: Path | None) -> Tokens:
    """The tokens `modelplex serve` accepts, from its flags or the environment."""
    admin = read_token(admin_file, ADMIN_TOKEN_ENV, "--admin-token-file")
    infer = read_token(infer_file, INFER_TOKEN_ENV, "--infer-token-file")
    return Tokens(admin.encode() if admin else None, infer.encode() if infer else None)


@dataclass(frozen=True)
class TlsFiles:
    """The certificate chain and private key both frontends serve TLS with (PEM)."""

    cert: Path  # certificate (chain), PEM
    key: Path  # its private key, PEM, unencrypted

    @staticmethod
    def of(cert: Path | None, key: Path | None) -> TlsFiles | None:
        """Both or neither; each readable and the pair usable, else an InvalidArgumentError."""
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise InvalidArgumentError("--tls-cert and --tls-key go together: give both, or neither")
        tls = TlsFiles(Path(cert), Path(key))
        for flag, path in (("--tls-cert", tls.cert), ("--tls-key", tls.key)):
            try:
                path.read_bytes()
            except OSError as exc:
                raise InvalidArgumentError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
        except ssl.SSLError as exc:
            raise InvalidArgumentError(f"--tls-cert/--tls-key: not a usable PEM certificate and key ({exc.reason or exc})") from None
        return tls

    def grpc_context(self) -> ssl.SSLContext:
        """The gRPC edge's TLS: these files, and HTTP/2 chosen by ALPN (gRPC clients insist on it)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["h2"])
        return context
