"""Bearer tokens and TLS against live servers (real processes, real sockets): one server with an
admin token only (inference open), one with admin and infer tokens over TLS on both frontends."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

import models
from modelplex.core.devices import DeviceKind, DeviceSpec, SliceSpec
from modelplex.core.plan import ModelAssignment, Plan, SlicePlan
from tritonclient.grpc import service_pb2 as pb  # the same service; modelplex's own stubs would
from tritonclient.grpc import service_pb2_grpc as pb_grpc  # clash with tritonclient's in one process
from server import RunningServer, start_server
from tls import SelfSigned, make_cert

pytestmark = pytest.mark.slow

ADMIN, INFER, WRONG = "admin-s3cret-token", "infer-t0ken", "not-the-token"
X = np.arange(8, dtype=np.float32).reshape(2, 4)
INFER_BODY = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}).encode()
READS = ["/v2", "/v2/models/ident", "/v2/models/ident/config", "/v2/models/ident/stats", "/v2/models/ident/ready",
         "/v2/models/stats", "/v2/status", "/v2/tasks", "/v2/plan"]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def one_slice_plan() -> Plan:
    cpu = DeviceSpec("cpu0", DeviceKind.CPU, 1)
    assignment = ModelAssignment("ident", 4, 10.0, 1.0, 1.0)
    return Plan("test", (cpu,), (SlicePlan("cpu0/a", SliceSpec("cpu0", 1, (0,)), (assignment,), 0.0, 0.1),))


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    models.identity_fp32(root / "ident" / "1" / "model.onnx", width=4)
    return root


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture(scope="module")
def admin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "admin.token"
    path.write_text(f"  {ADMIN}\n")  # whitespace around it is not part of the token
    return path


@pytest.fixture(scope="module")
def guarded(tiny_repo: Path, admin_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Admin token only: inference and reads open."""
    srv = start_server(tiny_repo, tmp_path_factory.mktemp("guarded"), ["--admin-token-file", str(admin_file), "--cpus", "0"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def locked(tiny_repo: Path, admin_file: Path, cert: SelfSigned, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Admin token from a file, infer token from the environment, TLS on both frontends."""
    srv = start_server(tiny_repo, tmp_path_factory.mktemp("locked"), ["--admin-token-file", str(admin_file), "--cpus", "0"],
                       env_extra={"MODELPLEX_INFER_TOKEN": INFER}, tls=(cert.cert, cert.key))
    yield srv
    srv.stop()


def assert_401(status: int, raw: bytes) -> None:
    assert status == 401, raw
    assert "token" in json.loads(raw)["error"]


# ---- HTTP -------------------------------------------------------------------------------------


def test_401_carries_json_error_and_www_authenticate(guarded: RunningServer) -> None:
    req = urllib.request.Request(f"http://{guarded.http_url}/v2/repository/models/ident/unload", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401
    assert err.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(err.value.read())["error"]


@pytest.mark.parametrize("token", [None, WRONG, INFER, "Basic " + ADMIN])
def test_mutating_http_routes_refuse_without_the_admin_token(guarded: RunningServer, token: str | None) -> None:
    headers = {"Authorization": token} if token and token.startswith("Basic") else bearer(token)
    for path, body in [("/v2/repository/models/ident/unload", b""), ("/v2/repository/models/ident/load", b""),
                       ("/v2/plan", json.dumps(one_slice_plan().to_json()).encode()), ("/v2/plan", b"{}"),
                       ("/v2/some/future/route", b"")]:
        assert_401(*guarded.request(path, body, headers))
    assert guarded.request("/v2/health/ready")[0] == 200  # nothing was unloaded


def test_unload_and_load_with_the_admin_token(guarded: RunningServer) -> None:
    assert guarded.request("/v2/repository/models/ident/unload", b"", bearer(ADMIN))[0] == 200
    assert guarded.request("/v2/models/ident/ready")[0] == 400
    assert guarded.request("/v2/repository/models/ident/load", b"", bearer(ADMIN))[0] == 200
    assert guarded.request("/v2/models/ident/ready")[0] == 200


def test_inference_reads_and_probes_open_without_an_infer_token(guarded: RunningServer) -> None:
    status, raw = guarded.request("/v2/models/ident/infer", INFER_BODY)
    assert status == 200, raw
    assert json.loads(raw)["outputs"][0]["data"] == X.ravel().tolist()
    for path in ["/v2/health/live", "/v2/health/ready", "/metrics", *READS]:
        assert guarded.request(path)[0] == 200, path
    assert guarded.request("/v2/repository/index", b"")[0] == 200


def test_tls_inference_needs_the_infer_or_admin_token(locked: RunningServer) -> None:
    for token in (None, WRONG):
        assert_401(*locked.request("/v2/models/ident/infer", INFER_BODY, bearer(token)))
        for path in READS:
            assert_401(*locked.request(path, None, bearer(token)))
        assert_401(*locked.request("/v2/repository/index", b"", bearer(token)))
    for token in (INFER, ADMIN):
        status, raw = locked.request("/v2/models/ident/infer", INFER_BODY, bearer(token))
        assert status == 200 and json.loads(raw)["outputs"][0]["data"] == X.ravel().tolist()
        for path in READS:
            assert locked.request(path, None, bearer(token))[0] == 200, path
    for path in ["/v2/health/live", "/v2/health/ready", "/metrics"]:  # probes stay open
        assert locked.request(path)[0] == 200, path
    assert_401(*locked.request("/v2/repository/models/ident/unload", b"", bearer(INFER)))


def test_a_refused_body_leaves_the_connection_usable(locked: RunningServer) -> None:
    """401 before the body is read; the connection goes on to the next request."""
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", locked.http_port, timeout=30, context=locked.ssl_context)
    try:
        conn.request("POST", "/v2/models/ident/infer", body=b"x" * (2 * 2**20), headers={"Content-Type": "application/json"})
        refused = conn.getresponse()
        assert refused.status == 401 and refused.getheader("WWW-Authenticate", "").startswith("Bearer")
        refused.read()
        conn.request("POST", "/v2/models/ident/infer", body=INFER_BODY, headers=bearer(INFER))
        ok = conn.getresponse()
        assert ok.status == 200 and json.loads(ok.read())["outputs"][0]["data"] == X.ravel().tolist()
    finally:
        conn.close()


def test_tls_refuses_plain_http_and_untrusted_clients(locked: RunningServer) -> None:
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://{locked.http_url}/v2/health/live", timeout=10).read()
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(f"https://{locked.http_url}/v2/health/live", timeout=10, context=ssl.create_default_context())
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)


# ---- gRPC -------------------------------------------------------------------------------------


def infer_request() -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="ident")
    req.inputs.add(name="x", datatype="FP32", shape=[2, 4])
    req.raw_input_contents.append(X.tobytes())
    return req


def meta(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token is not None else []


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    code: grpc.StatusCode = err.value.code()
    return code


def test_grpc_admin_rpcs_need_the_admin_token(guarded: RunningServer) -> None:
    with grpc.insecure_channel(guarded.grpc_url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for token in (None, WRONG):
            md = meta(token)
            assert code_of(lambda: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="ident"), metadata=md, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ident"), metadata=md, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: stub.LogSettings(pb.LogSettingsRequest(), metadata=md, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready  # nothing was unloaded
        # open inference without an infer token
        out = stub.ModelInfer(infer_request(), timeout=30)
        assert np.frombuffer(out.raw_output_contents[0], np.float32).tolist() == X.ravel().tolist()
        md = meta(ADMIN)
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="ident"), metadata=md, timeout=30)
        assert not stub.ModelReady(pb.ModelReadyRequest(name="ident"), timeout=10).ready
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="ident"), metadata=md, timeout=60)
        assert stub.ModelReady(pb.ModelReadyRequest(name="ident"), timeout=10).ready
        assert code_of(lambda: stub.LogSettings(pb.LogSettingsRequest(), metadata=md, timeout=10)) == grpc.StatusCode.UNIMPLEMENTED


def test_grpc_over_tls_with_the_infer_token(locked: RunningServer, cert: SelfSigned) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=cert.cert.read_bytes())
    with grpc.secure_channel(locked.grpc_url, creds) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live  # probes open
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        for token in (None, WRONG):
            md = meta(token)
            assert code_of(lambda: stub.ModelInfer(infer_request(), metadata=md, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="ident"), metadata=md, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: list(stub.ModelStreamInfer(iter([infer_request()]), metadata=md, timeout=10))) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(lambda: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="ident"), metadata=meta(INFER), timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
        for token in (INFER, ADMIN):
            md = meta(token)
            out = stub.ModelInfer(infer_request(), metadata=md, timeout=30)
            assert np.frombuffer(out.raw_output_contents[0], np.float32).tolist() == X.ravel().tolist()
            streamed = list(stub.ModelStreamInfer(iter([infer_request()]), metadata=md, timeout=30))
            assert len(streamed) == 1 and not streamed[0].error_message
            assert stub.ModelMetadata(pb.ModelMetadataRequest(name="ident"), metadata=md, timeout=10).name == "ident"
    with grpc.insecure_channel(locked.grpc_url) as plain:  # a plain client gets nowhere
        stub = pb_grpc.GRPCInferenceServiceStub(plain)
        assert code_of(lambda: stub.ServerLive(pb.ServerLiveRequest(), timeout=5)) == grpc.StatusCode.UNAVAILABLE


# ---- the CLI as a client ----------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLEX_")}
    return subprocess.run([sys.executable, "-m", "modelplex.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**full, **(env or {})})


def test_status_cli_sends_the_token_and_reports_401_in_one_line(locked: RunningServer, cert: SelfSigned,
                                                                  admin_file: Path) -> None:
    url = f"https://{locked.http_url}"
    refused = cli("status", "--url", url, "--ca-file", str(cert.cert))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "401" in lines[0] and "--token-file" in lines[0], refused.stderr
    assert cli("status", "--url", url, "--ca-file", str(cert.cert), "--token-file", str(admin_file)).returncode == 0
    ok = cli("status", "--url", url, "--ca-file", str(cert.cert), "--json", env={"MODELPLEX_INFER_TOKEN": INFER})
    assert ok.returncode == 0, ok.stderr
    assert "slices" in json.loads(ok.stdout)


def test_post_plan_with_the_admin_token_last(guarded: RunningServer) -> None:
    """Last of the module: the guarded server serves under this plan from now on."""
    status, raw = guarded.request("/v2/plan", json.dumps(one_slice_plan().to_json()).encode(), bearer(ADMIN))
    assert status == 200, raw
    assert json.loads(raw)["applied"] is True
    assert guarded.request("/v2/models/ident/infer", INFER_BODY)[0] == 200
