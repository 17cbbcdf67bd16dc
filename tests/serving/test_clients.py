"""Client conformance: today's tritonclient (HTTP and gRPC, sync and asyncio) and the KServe SDK's
v2 clients, installed beside the server, against a real server on every datatype."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from models import ALL_TYPES, identity_all_types, identity_fp32
from server import RunningServer, start_server

pytestmark = pytest.mark.slow
MODEL = "all_types"
SUPPORT = Path(__file__).parents[1] / "support"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    repo = tmp_path_factory.mktemp("clients_repo")
    identity_all_types(repo / MODEL / "1" / "model.onnx")
    identity_fp32(repo / "idf" / "1" / "model.onnx", width=4)
    server = start_server(repo, tmp_path_factory.mktemp("clients_state"))
    yield server
    server.stop()


def _tensors() -> dict[str, np.ndarray]:
    """One [2, 2] tensor per datatype, keyed by datatype."""
    rng = np.random.default_rng(11)
    out: dict[str, np.ndarray] = {}
    for datatype, _, dtype in ALL_TYPES:
        if dtype == "object":
            out[datatype] = np.array([[b"ab", "żó".encode()], [b"", b"x y"]], dtype=object)
        elif dtype == "bool":
            out[datatype] = rng.integers(0, 2, (2, 2)).astype(bool)
        else:
            out[datatype] = (rng.standard_normal((2, 2)) * 50).astype(dtype)
    return out


def _inputs(module: Any, binary: bool | None = None) -> tuple[list[Any], dict[str, np.ndarray]]:
    """`module`'s InferInputs for every datatype (`binary`: HTTP's binary_data) and what comes back."""
    inputs, expected = [], {}
    for datatype, x in _tensors().items():
        tensor = module.InferInput(f"in_{datatype.lower()}", list(x.shape), datatype)
        if binary is None:
            tensor.set_data_from_numpy(x)
        else:
            tensor.set_data_from_numpy(x, binary_data=binary)
        inputs.append(tensor)
        expected[f"out_{datatype.lower()}"] = x
    return inputs, expected


def _check(result: Any, expected: dict[str, np.ndarray]) -> None:
    for name, x in expected.items():
        got = result.as_numpy(name)
        assert got is not None, name
        if x.dtype == object:  # tritonclient gives a JSON (not binary) BYTES output as str elements
            got = np.array([v.encode() if isinstance(v, str) else v for v in got.flat], dtype=object).reshape(got.shape)
        assert got.dtype == x.dtype and got.tolist() == x.tolist(), name


def test_http_metadata_config_statistics_repository(srv: RunningServer) -> None:
    client = httpclient.InferenceServerClient(srv.http_url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_server_metadata()["name"] == "modelplex"
    meta = client.get_model_metadata(MODEL)
    assert {t["datatype"] for t in meta["inputs"]} == {d for d, _, _ in ALL_TYPES}
    assert {t["name"] for t in client.get_model_config(MODEL)["output"]} == {f"out_{d.lower()}" for d, _, _ in ALL_TYPES}
    before = client.get_inference_statistics(MODEL)["model_stats"][0]["inference_stats"]["success"]["count"]
    inputs, expected = _inputs(httpclient, binary=True)
    _check(client.infer(MODEL, inputs), expected)
    after = client.get_inference_statistics(MODEL)["model_stats"][0]["inference_stats"]["success"]["count"]
    assert after == before + 1
    assert {m["name"] for m in client.get_model_repository_index()} == {MODEL, "idf"}
    client.unload_model("idf")
    assert not client.is_model_ready("idf")
    client.load_model("idf")
    assert client.is_model_ready("idf")
    client.close()


@pytest.mark.parametrize(("binary_in", "binary_out"), [(False, False), (True, True), (False, True), (True, False)])
def test_http_infer_every_datatype(srv: RunningServer, binary_in: bool, binary_out: bool) -> None:
    client = httpclient.InferenceServerClient(srv.http_url)
    inputs, expected = _inputs(httpclient, binary=binary_in)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in expected]
    _check(client.infer(MODEL, inputs, outputs=outputs), expected)
    client.close()


def test_grpc_metadata_config_statistics_repository(srv: RunningServer) -> None:
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.get_server_metadata().name == "modelplex"
    meta = client.get_model_metadata(MODEL)
    assert {t.datatype for t in meta.inputs} == {d for d, _, _ in ALL_TYPES}
    config = client.get_model_config(MODEL).config
    assert {t.name for t in config.output} == {f"out_{d.lower()}" for d, _, _ in ALL_TYPES}
    before = client.get_inference_statistics(MODEL).model_stats[0].inference_stats.success.count
    inputs, expected = _inputs(grpcclient)
    _check(client.infer(MODEL, inputs), expected)
    assert client.get_inference_statistics(MODEL).model_stats[0].inference_stats.success.count == before + 1
    assert {m.name for m in client.get_model_repository_index().models} == {MODEL, "idf"}
    client.unload_model("idf")
    assert not client.is_model_ready("idf")
    client.load_model("idf")
    assert client.is_model_ready("idf")
    client.close()


def test_grpc_float_request_parameters(srv: RunningServer) -> None:
    """tritonclient sends float parameters as double_param (2.41 refused to send them at all); the
    server reads them (a parameter it could not read has no value, which it refuses)."""
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    inputs, expected = _inputs(grpcclient)
    _check(client.infer(MODEL, inputs, parameters={"ratio": 0.25, "big": 1.5e300, "n": 3, "s": "x"}), expected)
    client.close()


def test_asyncio_clients(srv: RunningServer) -> None:
    async def main() -> None:
        http = httpaio.InferenceServerClient(srv.http_url)
        grpc = grpcaio.InferenceServerClient(srv.grpc_url)
        try:
            assert await http.is_model_ready(MODEL) and await grpc.is_model_ready(MODEL)
            assert (await http.get_model_metadata(MODEL))["name"] == MODEL
            assert (await grpc.get_model_metadata(MODEL)).name == MODEL
            assert (await grpc.get_model_config(MODEL)).config.name == MODEL
            h_inputs, expected = _inputs(httpaio, binary=True)
            g_inputs, _ = _inputs(grpcaio)
            h_result, g_result = await asyncio.gather(http.infer(MODEL, h_inputs), grpc.infer(MODEL, g_inputs))
            _check(h_result, expected)
            _check(g_result, expected)
        finally:
            await http.close()
            await grpc.close()

    asyncio.run(main())


def test_kserve_sdk_v2_clients(srv: RunningServer) -> None:
    """The KServe SDK's InferenceRESTClient (v2 protocol) and InferenceGRPCClient, in their own
    process (their protos and tritonclient's cannot share one)."""
    out = subprocess.run([sys.executable, str(SUPPORT / "kserve_client.py"), srv.http_url, srv.grpc_url],
                         capture_output=True, text=True, timeout=60, cwd=SUPPORT)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for check in ("rest_live", "rest_ready", "rest_model_ready", "grpc_live", "grpc_ready", "grpc_model_ready"):
        assert report[check] is True, (check, report)
    for check in ("rest_infer_json", "rest_infer_binary", "grpc_infer"):
        assert report[check] and all(report[check].values()), (check, report[check])
    status, message = report["rest_v1"]  # a v1 client hears which protocol to speak
    assert status == 400 and "unsupported protocol" in message and "/v2/models/{model}/infer" in message, report


@pytest.mark.parametrize(("path", "body", "names"), [
    ("/v1/models/idf:predict", b'{"instances": [[1, 2, 3, 4]]}', "/v1/"),
    ("/v1/models", None, "/v1/"),
    ("/v3/models/idf/infer", b"{}", "/v3/"),
    ("/v2/models/idf:predict", b'{"instances": [[1, 2, 3, 4]]}', ":predict"),
    ("/v2/models/idf/infer", b'{"instances": [[1, 2, 3, 4]]}', "'instances'"),
])
def test_another_protocol_version_is_a_400_naming_it(srv: RunningServer, path: str, body: bytes | None, names: str) -> None:
    status, raw = srv.request(path, body, {"Content-Type": "application/json"})
    message = json.loads(raw)["error"]
    assert status == 400 and message.startswith("unsupported protocol") and names in message, (status, message)
    assert srv.request("/v2/models/idf/ready")[0] == 200  # the server is unaffected
    assert srv.request("/v2/models/idf/nothing-here")[0] == 404  # an unknown v2 path stays a 404
