"""tritonclient.grpc against a live server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: Any) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(server.grpc_url)


def test_health_metadata_config(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True  # every model that loaded is ready ("broken" never loaded)
    assert client.is_model_ready("cnn") is True
    assert client.is_model_ready("broken") is False and client.is_model_ready("no-such-model") is False
    assert client.get_server_metadata().name == "modelplex"
    meta = client.get_model_metadata("cnn")
    assert meta.inputs[0].name == "input" and list(meta.inputs[0].shape) == [-1, 3, 32, 32]
    config = client.get_model_config("cnn").config
    assert config.max_batch_size >= 1 and list(config.input[0].dims) == [3, 32, 32]


def test_infer_equals_in_process(client: grpcclient.InferenceServerClient, test_repository: Path) -> None:
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("cnn", [inp], outputs=[grpcclient.InferRequestedOutput("output")])
    sess = ort.InferenceSession(str(test_repository / "cnn" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(result.as_numpy("output"), sess.run(None, {"input": x})[0], rtol=1e-4, atol=1e-5)


def test_bytes_round_trip(client: grpcclient.InferenceServerClient) -> None:
    text = np.array([[b"abc", "żółw".encode()]], dtype=object)
    inp = grpcclient.InferInput("text", [1, 2], "BYTES")
    inp.set_data_from_numpy(text)
    got = client.infer("bytes_identity", [inp]).as_numpy("echo")
    assert got.tolist() == text.tolist()


def test_statistics_and_index(client: grpcclient.InferenceServerClient) -> None:
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    before = client.get_inference_statistics("cnn").model_stats[0].inference_stats.success.count
    client.infer("cnn", [inp])
    after = client.get_inference_statistics("cnn").model_stats[0].inference_stats.success.count
    assert after == before + 1
    names = {m.name: m.state for m in client.get_model_repository_index().models}
    assert names["cnn"] == "READY" and names["broken"] == "UNAVAILABLE"


@pytest.mark.parametrize(
    ("model", "name", "shape", "dtype", "status"),
    [
        ("nope", "input", [1, 3, 32, 32], "FP32", "NOT_FOUND"),
        ("cnn", "wrong", [1, 3, 32, 32], "FP32", "INVALID_ARGUMENT"),
        ("cnn", "input", [1, 3, 31, 32], "FP32", "INVALID_ARGUMENT"),
        ("cnn", "input", [1, 3, 32, 32], "FP64", "INVALID_ARGUMENT"),
    ],
)
def test_bad_requests(client: grpcclient.InferenceServerClient, model: str, name: str, shape: list[int], dtype: str, status: str) -> None:
    x = np.zeros(shape, dtype=np.float64 if dtype == "FP64" else np.float32)
    inp = grpcclient.InferInput(name, shape, dtype)
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as err:
        client.infer(model, [inp])
    assert status in str(err.value.status())


def test_negative_timeout_rejected(client: grpcclient.InferenceServerClient) -> None:
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as err:
        client.infer("cnn", [inp], parameters={"timeout": -5})
    assert "timeout" in str(err.value)


def test_grpc_and_http_encode_the_same_answers(client: grpcclient.InferenceServerClient, server: Any) -> None:
    """Both frontends encode the data plane's typed answers; the documents agree field by field."""
    g_config = client.get_model_config("cnn", as_json=True)["config"]
    h_config = server.get_json("/v2/models/cnn/config")
    for key in ("name", "platform", "max_batch_size"):
        assert g_config[key] == h_config[key], key
    assert [(i["name"], i["data_type"], [int(d) for d in i["dims"]]) for i in g_config["input"]] == [
        (i["name"], i["data_type"], i["dims"]) for i in h_config["input"]
    ]
    assert int(g_config["dynamic_batching"].get("max_queue_delay_microseconds", 0)) == h_config["dynamic_batching"]["max_queue_delay_microseconds"]
    g_meta = client.get_model_metadata("cnn", as_json=True)
    h_meta = server.get_json("/v2/models/cnn")
    assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in g_meta["outputs"]] == [
        (t["name"], t["datatype"], t["shape"]) for t in h_meta["outputs"]
    ]
    g_stats = client.get_inference_statistics("cnn", as_json=True)["model_stats"][0]
    h_stats = server.get_json("/v2/models/cnn/stats")["model_stats"][0]
    assert int(g_stats["inference_count"]) == h_stats["inference_count"] > 0
    assert sorted(int(b["batch_size"]) for b in g_stats["batch_stats"]) == sorted(b["batch_size"] for b in h_stats["batch_stats"])
    assert client.get_server_metadata(as_json=True)["extensions"] == server.get_json("/v2")["extensions"]


def test_stream_answers_every_request_with_its_id(server: Any) -> None:
    """ModelStreamInfer: good and bad requests on one stream; each answer, errors too, carries
    its request's id, so a client with many requests in flight knows which one failed."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    def request(rid: str, model: str, shape: list[int]) -> Any:
        req = service_pb2.ModelInferRequest(model_name=model, id=rid)
        req.inputs.add(name="input", datatype="FP32", shape=shape)
        req.raw_input_contents.append(np.zeros(shape, np.float32).tobytes())
        return req

    sent = [request("a", "cnn", [1, 3, 32, 32]), request("b", "cnn", [1, 3, 31, 32]),
            request("c", "nope", [1, 3, 32, 32]), request("d", "cnn", [2, 3, 32, 32])]
    with grpc.insecure_channel(server.grpc_url) as channel:
        answers = list(service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(iter(sent), timeout=30))
    by_id = {a.infer_response.id: a for a in answers}
    assert sorted(by_id) == ["a", "b", "c", "d"]
    assert not by_id["a"].error_message and list(by_id["d"].infer_response.outputs[0].shape)[0] == 2
    assert "shape" in by_id["b"].error_message and by_id["b"].infer_response.model_name == "cnn"
    assert "nope" in by_id["c"].error_message
