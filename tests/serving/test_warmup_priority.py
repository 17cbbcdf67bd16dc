"""Warmup samples of config.pbtxt run on a new worker before its slice is ready, and the
`priority` request parameter, against a live server (real processes and sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from models import identity_fp32  # tests/support (conftest puts it on the path)
from server import RunningServer, start_server

pytestmark = pytest.mark.slow

PBTXT = """
max_batch_size: 4
dynamic_batching { priority_levels: 2 default_priority_level: 2 }
model_warmup {
  name: "zeros" batch_size: 4 count: 3
  inputs { key: "x" value { data_type: TYPE_FP32 dims: [8] zero_data: true } }
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("warm")
    identity_fp32(root / "models" / "warm" / "1" / "model.onnx", width=8)
    (root / "models" / "warm" / "config.pbtxt").write_text(PBTXT)
    identity_fp32(root / "models" / "cold" / "1" / "model.onnx", width=8)
    srv = start_server(root / "models", root / "state")
    yield srv
    srv.stop()


def test_warmup_ran_on_the_worker_before_the_slice_was_ready(server: RunningServer) -> None:
    log = server.log()
    ran = [line for line in log.splitlines() if "warmup sample 'zeros' ran 3 time(s)" in line]
    assert len(ran) == 1 and "model warm on slice" in ran[0], log
    assert log.index(ran[0]) < log.index("warm v1 ready")
    assert "model cold" not in log.replace("cold v1 ready", "")  # no warmup configured: none ran
    config = server.get_json("/v2/models/warm/config")
    assert config["dynamic_batching"]["priority_levels"] == 2


def _infer(server: RunningServer, params: dict[str, object]) -> tuple[int, dict[str, object]]:
    body = {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": [0.5] * 8}], "parameters": params}
    return server.post_json("/v2/models/warm/infer", json.dumps(body).encode())


@pytest.mark.parametrize("priority", [0, 1, 2, "1"])
def test_valid_priorities_are_served(server: RunningServer, priority: object) -> None:
    status, doc = _infer(server, {"priority": priority})
    assert status == 200, doc


@pytest.mark.parametrize(("priority", "message"), [(3, "between 1 and 2"), (-1, "non-negative"), (1.5, "non-negative"),
                                                   ("high", "non-negative")])
def test_bad_priority_is_400(server: RunningServer, priority: object, message: str) -> None:
    status, doc = _infer(server, {"priority": priority})
    assert status == 400 and message in str(doc["error"]), doc
    assert _infer(server, {})[0] == 200  # the server unaffected


def test_tritonclient_priority_over_http_and_grpc(server: RunningServer) -> None:
    x = np.ones((1, 8), dtype=np.float32)
    h = httpclient.InferInput("x", [1, 8], "FP32")
    h.set_data_from_numpy(x)
    np.testing.assert_array_equal(httpclient.InferenceServerClient(server.http_url).infer("warm", [h], priority=1).as_numpy("y"), x)
    g = grpcclient.InferInput("x", [1, 8], "FP32")
    g.set_data_from_numpy(x)
    np.testing.assert_array_equal(grpcclient.InferenceServerClient(server.grpc_url).infer("warm", [g], priority=1).as_numpy("y"), x)
