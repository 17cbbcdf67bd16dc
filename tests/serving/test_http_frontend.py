"""tritonclient.http and raw HTTP against a live server (real process, real sockets)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow


def reference(repo: Path, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(repo / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client(server: Any) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(server.http_url, concurrency=4)


def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelplex"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_config(client: httpclient.InferenceServerClient) -> None:
    assert client.is_model_ready("cnn")
    meta = client.get_model_metadata("cnn")
    assert meta["inputs"][0]["name"] == "input"
    assert meta["inputs"][0]["shape"] == [-1, 3, 32, 32]
    assert meta["inputs"][0]["datatype"] == "FP32"
    config = client.get_model_config("cnn")
    assert config["max_batch_size"] >= 1
    assert config["input"][0]["dims"] == [3, 32, 32]


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
def test_cnn_outputs_equal_in_process(
    client: httpclient.InferenceServerClient, test_repository: Path, binary_in: bool, binary_out: bool
) -> None:
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_in)
    out = httpclient.InferRequestedOutput("output", binary_data=binary_out)
    result = client.infer("cnn", [inp], outputs=[out])
    expected = reference(test_repository, "cnn", {"input": x})[0]
    np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=1e-4, atol=1e-5)


def test_transformer_int64_tokens(client: httpclient.InferenceServerClient, test_repository: Path) -> None:
    meta = client.get_model_metadata("transformer")
    spec = meta["inputs"][0]
    assert spec["datatype"] == "INT64"
    shape = [2] + [d if d > 0 else 16 for d in spec["shape"][1:]]
    ids = np.random.default_rng(2).integers(0, 100, size=shape).astype(np.int64)
    inp = httpclient.InferInput(spec["name"], shape, "INT64")
    inp.set_data_from_numpy(ids)
    result = client.infer("transformer", [inp])
    expected = reference(test_repository, "transformer", {spec["name"]: ids})
    out_name = meta["outputs"][0]["name"]
    np.testing.assert_allclose(result.as_numpy(out_name), expected[0], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_round_trip(client: httpclient.InferenceServerClient, binary: bool) -> None:
    text = np.array([["héllo", "wörld", ""], ["a", "bb", "ccc"]], dtype=object)
    inp = httpclient.InferInput("text", list(text.shape), "BYTES")
    inp.set_data_from_numpy(text, binary_data=binary)
    result = client.infer("bytes_identity", [inp], outputs=[httpclient.InferRequestedOutput("echo", binary_data=binary)])
    got = result.as_numpy("echo")
    assert [[v.decode() if isinstance(v, bytes) else v for v in row] for row in got] == text.tolist()


def test_statistics_move(client: httpclient.InferenceServerClient) -> None:
    before = client.get_inference_statistics("mlp")["model_stats"][0]["inference_stats"]["success"]["count"]
    x = np.ones((1, 64), dtype=np.float32)
    inp = httpclient.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(x)
    for _ in range(3):
        client.infer("mlp", [inp])
    stats = client.get_inference_statistics("mlp")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == before + 3
    assert stats["execution_count"] >= 1


def test_gzip_body(server: Any) -> None:
    x = np.ones((1, 64), dtype=np.float32)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x.ravel().tolist()}]}).encode()
    status, doc = server.post_json("/v2/models/mlp/infer", gzip.compress(body), {"Content-Encoding": "gzip"})
    assert status == 200, doc
    assert doc["outputs"][0]["shape"] == [1, 10]


def test_metrics_endpoint(server: Any, client: httpclient.InferenceServerClient) -> None:
    status, body = server.request("/metrics")
    assert status == 200
    text = body.decode()
    assert 'modelplex_requests_total{model="mlp",version="1"}' in text
    assert "modelplex_queue_seconds_bucket" in text


def test_repository_index_reports_broken_model(server: Any) -> None:
    status, doc = server.post_json("/v2/repository/index", b"")
    assert status == 200
    by_name = {m["name"]: m for m in doc}  # type: ignore[union-attr]
    assert by_name["cnn"]["state"] == "READY"
    assert by_name["broken"]["state"] == "UNAVAILABLE"
    assert by_name["broken"]["reason"]


def test_unload_and_load(server: Any, client: httpclient.InferenceServerClient) -> None:
    client.unload_model("mlp")
    assert not client.is_model_ready("mlp")
    with pytest.raises(InferenceServerException):
        inp = httpclient.InferInput("input", [1, 64], "FP32")
        inp.set_data_from_numpy(np.ones((1, 64), dtype=np.float32))
        client.infer("mlp", [inp])
    client.load_model("mlp")
    assert client.is_model_ready("mlp")


# ---- bad input: each a clear 4xx, and the server keeps serving --------------------------------
GOOD = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}


def _body(**changes: Any) -> bytes:
    inp = dict(GOOD, **changes)
    return json.dumps({"inputs": [inp]}).encode()


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "needle"),
    [
        ("/v2/models/nope/infer", _body(), {}, 404, "unknown model"),
        ("/v2/models/mlp/versions/9/infer", _body(), {}, 404, "no version"),
        ("/v2/models/mlp/infer", _body(name="wrong"), {}, 400, "no input named"),
        ("/v2/models/mlp/infer", _body(shape=[1, 63], data=[0.0] * 63), {}, 400, "shape"),
        ("/v2/models/mlp/infer", _body(datatype="INT32", data=[0] * 64), {}, 400, "datatype"),
        ("/v2/models/mlp/infer", _body(data=[0.0] * 10), {}, 400, "needs 64 elements"),
        ("/v2/models/mlp/infer", b'{"inputs": [', {}, 400, "not valid JSON"),
        ("/v2/models/mlp/infer", _body(datatype="FP99"), {}, 400, "unknown datatype"),
        ("/v2/models/mlp/infer", b'{"inputs": []}', {}, 400, "inputs"),
    ],
)
def test_bad_json_requests(server: Any, path: str, body: bytes, headers: dict[str, str], status: int, needle: str) -> None:
    got, doc = server.post_json(path, body, headers)
    assert got == status, doc
    assert needle in doc["error"]


def _binary(declared: int, raw: bytes, header_len: int | None = None) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": declared}}]}
    ).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head) if header_len is None else header_len)}


def test_truncated_binary_body(server: Any) -> None:
    body, headers = _binary(256, b"\0" * 100)
    status, doc = server.post_json("/v2/models/mlp/infer", body, headers)
    assert status == 400 and "truncated" in doc["error"]


def test_binary_size_not_matching_shape(server: Any) -> None:
    body, headers = _binary(128, b"\0" * 128)
    status, doc = server.post_json("/v2/models/mlp/infer", body, headers)
    assert status == 400 and "needs 256" in doc["error"]


@pytest.mark.parametrize("header_len", [10**6, -5, "abc"])
def test_wrong_header_content_length(server: Any, header_len: Any) -> None:
    body, headers = _binary(256, b"\0" * 256)
    headers["Inference-Header-Content-Length"] = str(header_len)
    status, doc = server.post_json("/v2/models/mlp/infer", body, headers)
    assert status == 400, doc
    assert "Inference-Header-Content-Length" in doc["error"] or "JSON" in doc["error"]


def _raw_http(server: Any, head: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send a request whose body may be cut short, and read the answer (over-limit bodies are
    refused from their Content-Length before the body is read)."""
    import socket

    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        header, rest = data.split(b"\r\n\r\n", 1)
        status = int(header.split()[1])
        length = int([l for l in header.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        while len(rest) < length:
            rest += s.recv(65536)
    return status, json.loads(rest[:length])


def test_body_over_limit(server: Any) -> None:
    # the test server runs with --max-body-mb 4; the client declares 5 MiB
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\n\r\n"
    status, doc = _raw_http(server, head, b"x" * 1024)
    assert status == 413 and "limit" in doc["error"]


def test_chunked_body_over_limit(server: Any) -> None:
    chunk = b"x" * 2**20
    head = b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    status, doc = _raw_http(server, head, body)
    assert status == 413 and "limit" in doc["error"]


def test_gzip_bomb_over_limit(server: Any) -> None:
    status, doc = server.post_json("/v2/models/mlp/infer", gzip.compress(b" " * (6 * 2**20)), {"Content-Encoding": "gzip"})
    assert status == 413 and "limit" in doc["error"]


@pytest.mark.parametrize("timeout", [-1, 0, 10**15, "soon", True])
def test_negative_or_absurd_timeout(server: Any, timeout: Any) -> None:
    body = json.dumps({"inputs": [GOOD], "parameters": {"timeout": timeout}}).encode()
    status, doc = server.post_json("/v2/models/mlp/infer", body)
    assert status == 400 and "timeout" in doc["error"]


def test_unknown_route_is_json_404(server: Any) -> None:
    status, body = server.request("/v2/nothing/here")
    assert status == 404 and "error" in json.loads(body)


def test_server_still_serves_after_bad_input(client: httpclient.InferenceServerClient) -> None:
    inp = httpclient.InferInput("input", [1, 64], "FP32")
    inp.set_data_from_numpy(np.ones((1, 64), dtype=np.float32))
    assert client.infer("mlp", [inp]).as_numpy("output").shape == (1, 10)
