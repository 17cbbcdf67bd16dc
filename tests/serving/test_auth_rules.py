"""Which call needs which token, the token check, token and TLS files, and `serve`'s one-line
refusals (no server: they happen before one starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplex.cli import main
from modelplex.core.errors import InvalidArgumentError, UnauthenticatedError
from modelplex.serving.auth import Access, TlsFiles, Tokens, grpc_access, http_access, read_token
from tls import make_cert


@pytest.mark.parametrize(("method", "path", "need"), [
    ("GET", "/v2/health/live", Access.OPEN),
    ("GET", "/v2/health/ready", Access.OPEN),
    ("GET", "/metrics", Access.OPEN),
    ("POST", "/v2/models/m/infer", Access.INFER),
    ("POST", "/v2/models/m/versions/2/infer", Access.INFER),
    ("POST", "/v2/tasks/digits/infer", Access.INFER),
    ("POST", "/v2/repository/index", Access.INFER),
    ("GET", "/v2/models/m/config", Access.INFER),
    ("GET", "/v2/health/../plan", Access.INFER),
    ("GET", "/v2", Access.INFER),
    ("POST", "/v2/repository/models/m/load", Access.ADMIN),
    ("POST", "/v2/repository/models/m/unload", Access.ADMIN),
    ("POST", "/v2/plan", Access.ADMIN),
    ("POST", "/v2/health/live", Access.OPEN),  # 405 from the routes; nothing to protect
    ("DELETE", "/v2/models/m", Access.ADMIN),
    ("POST", "/v2/models/m/infer/x", Access.ADMIN),
    ("POST", "/v2/anything-new", Access.ADMIN),
])
def test_http_access(method: str, path: str, need: Access) -> None:
    assert http_access(method, path) is need


@pytest.mark.parametrize(("rpc", "need"), [
    ("ServerLive", Access.OPEN), ("ServerReady", Access.OPEN),
    ("ModelInfer", Access.INFER), ("ModelStreamInfer", Access.INFER), ("ModelMetadata", Access.INFER),
    ("ModelConfig", Access.INFER), ("ModelStatistics", Access.INFER), ("RepositoryIndex", Access.INFER),
    ("RepositoryModelLoad", Access.ADMIN), ("RepositoryModelUnload", Access.ADMIN), ("LogSettings", Access.ADMIN),
    ("TraceSetting", Access.ADMIN), ("SystemSharedMemoryRegister", Access.ADMIN), ("SomethingNew", Access.ADMIN),
])
def test_grpc_access(rpc: str, need: Access) -> None:
    assert grpc_access(f"/inference.GRPCInferenceService/{rpc}") is need
    assert grpc_access(f"/other.Service/{rpc}") is Access.ADMIN


def test_tokens_check() -> None:
    both = Tokens(b"adm", b"inf")
    for need in Access:
        both.check(need, b"Bearer adm")
        both.check(need, b"bearer   adm ")
    both.check(Access.INFER, b"Bearer inf")
    both.check(Access.OPEN, None)
    for header in (None, b"", b"Bearer", b"Bearer inf", b"Bearer ad", b"Bearer admx", b"Basic adm", b"adm"):
        with pytest.raises(UnauthenticatedError):
            both.check(Access.ADMIN, header)
    with pytest.raises(UnauthenticatedError):
        both.check(Access.INFER, b"Bearer nope")
    admin_only = Tokens(b"adm")
    admin_only.check(Access.INFER, None)  # inference open without an infer token
    with pytest.raises(UnauthenticatedError):
        admin_only.check(Access.ADMIN, b"Bearer inf")
    Tokens().check(Access.ADMIN, None)  # no tokens: all open (nothing is wrapped then)
    with pytest.raises(InvalidArgumentError, match="admin token too"):
        Tokens(None, b"inf")


def test_read_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("T_ENV", raising=False)
    assert read_token(None, "T_ENV", "--f") is None
    monkeypatch.setenv("T_ENV", " from-env\n")
    assert read_token(None, "T_ENV", "--f") == "from-env"
    f = tmp_path / "t"
    f.write_text("\n  from-file \n\n")
    assert read_token(f, "T_ENV", "--f") == "from-file"  # the file wins over the environment
    f.write_text(" \n")
    with pytest.raises(InvalidArgumentError, match="empty"):
        read_token(f, "T_ENV", "--f")
    f.write_text("two words")
    with pytest.raises(InvalidArgumentError, match="without spaces"):
        read_token(f, "T_ENV", "--f")
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        read_token(tmp_path / "missing", "T_ENV", "--f")
    monkeypatch.setenv("T_ENV", "")
    with pytest.raises(InvalidArgumentError, match="T_ENV: the token is empty"):
        read_token(None, "T_ENV", "--f")


def test_tls_files(tmp_path: Path) -> None:
    cert = make_cert(tmp_path)
    assert TlsFiles.of(None, None) is None
    assert TlsFiles.of(cert.cert, cert.key) == TlsFiles(cert.cert, cert.key)
    with pytest.raises(InvalidArgumentError, match="go together"):
        TlsFiles.of(cert.cert, None)
    with pytest.raises(InvalidArgumentError, match="--tls-key .*cannot read"):
        TlsFiles.of(cert.cert, tmp_path / "missing.pem")
    with pytest.raises(InvalidArgumentError, match="not a usable PEM"):
        TlsFiles.of(cert.key, cert.cert)


def _serve_refusal(args: list[str], capsys: pytest.CaptureFixture[str], repo: Path) -> str:
    assert main(["serve", "--repository", str(repo), "--state-dir", str(repo / "state"), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_serve_refuses_bad_security_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELPLEX_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("MODELPLEX_INFER_TOKEN", raising=False)
    empty, good = tmp_path / "empty", tmp_path / "good"
    empty.write_text("\n")
    good.write_text("tok\n")
    cert = make_cert(tmp_path / "cert")
    assert "empty" in _serve_refusal(["--admin-token-file", str(empty)], capsys, tmp_path)
    assert "cannot read" in _serve_refusal(["--admin-token-file", str(tmp_path / "nope")], capsys, tmp_path)
    assert "admin token too" in _serve_refusal(["--infer-token-file", str(good)], capsys, tmp_path)
    assert "go together" in _serve_refusal(["--tls-cert", str(cert.cert)], capsys, tmp_path)
    assert "cannot read" in _serve_refusal(["--tls-cert", str(cert.cert), "--tls-key", str(tmp_path / "k")], capsys, tmp_path)
