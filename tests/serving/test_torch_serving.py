"""A real server with a PyTorch model next to an ONNX one: both answer over HTTP, metadata names
their platforms, and a device fault is a 503 (HTTP) / UNAVAILABLE (gRPC) naming the cause; after
a fault that loses the worker's CUDA context the slice comes back and serves again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch_models
from models import identity_fp32
from server import RunningServer, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("torch-repo")
    identity_fp32(root / "onnx_id" / "1" / "model.onnx")
    torch_models.affine(root)
    torch_models.faulty(root)
    srv = start_server(root, tmp_path_factory.mktemp("torch-state"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.request("/v2/health/ready")[0] != 200:
            time.sleep(0.2)
        yield srv
    finally:
        srv.stop()


def _infer(srv: RunningServer, model: str, name: str, rows: list[list[float]]) -> tuple[int, dict[str, Any]]:
    body = {"inputs": [{"name": name, "datatype": "FP32", "shape": [len(rows), len(rows[0])],
                        "data": [v for r in rows for v in r]}]}
    return srv.post_json(f"/v2/models/{model}/infer", json.dumps(body).encode())


def test_pytorch_and_onnx_models_answer_side_by_side(server: RunningServer) -> None:
    status, out = _infer(server, "affine", "INPUT__0", [[1, 2, 3, 4], [0, 0, 0, 1]])
    assert status == 200, out
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["OUTPUT__0"]["data"] == [3, 5, 7, 9, 1, 1, 1, 3]
    assert by_name["OUTPUT__1"]["shape"] == [2, 1] and by_name["OUTPUT__1"]["data"] == [10, 1]
    status, out = _infer(server, "onnx_id", "x", [[7.0]])
    assert status == 200 and out["outputs"][0]["data"] == [7.0]
    assert server.get_json("/v2/models/affine")["platform"] == "pytorch_libtorch"
    assert server.get_json("/v2/models/onnx_id")["platform"] == "onnxruntime_onnx"
    status, out = _infer(server, "affine", "INPUT__0", [[1, 2, 3]])  # wrong width: the client's fault
    assert status == 400, out


def test_device_faults_are_503_and_a_lost_context_restarts_the_worker(server: RunningServer) -> None:
    status, out = _infer(server, "faulty", "INPUT__0", [[5000, 0, 0, 0]])
    assert status == 503 and "out of memory" in out["error"], out
    status, out = _infer(server, "faulty", "INPUT__0", [[-1, 0, 0, 0]])
    assert status == 503 and "illegal memory access" in out["error"], out
    deadline = time.monotonic() + 30  # the worker exits; its slice starts a new one
    while time.monotonic() < deadline:
        status, out = _infer(server, "faulty", "INPUT__0", [[1, 2, 3, 4]])
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200 and out["outputs"][0]["data"] == [2, 3, 4, 5], out
    assert "CUDA context is lost" in server.log()


def test_a_device_fault_over_grpc_is_unavailable(server: RunningServer) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.grpc_url)
    x = grpcclient.InferInput("INPUT__0", [1, 4], "FP32")
    x.set_data_from_numpy(np.full((1, 4), 5000, np.float32))
    with pytest.raises(InferenceServerException) as err:
        client.infer("faulty", [x])
    assert "UNAVAILABLE" in str(err.value.status()) and "out of memory" in str(err.value.message())
    client.close()
