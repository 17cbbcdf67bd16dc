"""Model-less queries against a live server: tasks, variants and selection over HTTP and gRPC."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from modelplex.repository.examples import write_examples
from modelplex.repository.registry_variants import register
from modelplex.repository.store import Registry
from modelplex.repository.tasks import write_task_examples
from modelplex.repository.variants import Precision

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))
from server import RunningServer, start_server  # noqa: E402

pytestmark = pytest.mark.slow
CNN_X = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
DIGIT_X = np.random.default_rng(1).random((1, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def ml_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("modelless")
    examples = root / "examples"
    write_examples(examples)
    tasks = root / "tasks"
    write_task_examples(tasks, None)
    state = root / "state"
    with Registry(state) as registry:
        register(registry, examples / "cnn" / "1" / "model.onnx", "image-classification", "cnn",
                 precisions=(Precision.FP32, Precision.INT8_STATIC))
        for name in ("digits-logreg", "digits-mlp256"):
            register(registry, tasks / name / "1" / "model.onnx", "digits", name, tasks / "digits-validation.npz",
                     precisions=(Precision.FP32,))
    repo = root / "repo"  # the server's own repository: just the mlp
    (repo / "mlp").mkdir(parents=True)
    (examples / "mlp").rename(repo / "mlp")
    srv = start_server(repo, state)
    _wait_loaded(srv, 4)
    yield srv
    srv.stop()


def _wait_loaded(srv: RunningServer, n: int) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        variants = srv.get_json("/v2/tasks")["variants"]
        if sum(1 for v in variants.values() if v["deployment"]) >= n:
            return
        time.sleep(0.2)
    raise AssertionError("variants were not preloaded")


def _post(srv: RunningServer, path: str, x: np.ndarray, params: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    doc: dict[str, Any] = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    if params:
        doc["parameters"] = params
    return srv.post_json(path, json.dumps(doc).encode())


def test_tasks_are_listed(ml_server: RunningServer) -> None:
    doc = ml_server.get_json("/v2/tasks")
    assert doc["tasks"] == ["digits", "image-classification"]
    assert {"cnn:fp32", "cnn:int8-static", "digits-logreg:fp32", "digits-mlp256:fp32"} <= set(doc["variants"])


def test_loose_floor_gets_int8_strict_floor_gets_fp32(ml_server: RunningServer) -> None:
    status, doc = _post(ml_server, "/v2/tasks/image-classification/infer", CNN_X, {"latency_ms": 50, "min_accuracy": 0.9})
    assert status == 200, doc
    assert doc["model_name"] == "cnn" and doc["parameters"]["variant"] == "cnn:int8-static"
    status, doc = _post(ml_server, "/v2/tasks/image-classification/infer", CNN_X, {"latency_ms": 50, "min_accuracy": 0.999})
    assert status == 200, doc
    assert doc["parameters"]["variant"] == "cnn:fp32"
    assert doc["outputs"][0]["shape"] == [1, 10]


def test_model_with_latency_target_picks_a_variant(ml_server: RunningServer) -> None:
    status, doc = _post(ml_server, "/v2/models/digits-mlp256/infer", DIGIT_X, {"latency_ms": 100})
    assert status == 200, doc
    assert doc["model_name"] == "digits-mlp256" and doc["parameters"]["variant"] == "digits-mlp256:fp32"


def test_named_variant(ml_server: RunningServer) -> None:
    status, doc = _post(ml_server, "/v2/models/cnn:int8-static/infer", CNN_X)
    assert status == 200, doc
    assert doc["parameters"]["variant"] == "cnn:int8-static" and doc["model_version"] == "1"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"latency_ms": 50, "min_accuracy": 0.999999}, None),  # agreement of fp32 is 1.0: reachable
        ({"latency_ms": 1000, "min_accuracy": 0.999}, None),
    ],
)
def test_reachable_queries(ml_server: RunningServer, params: dict[str, Any], needle: str | None) -> None:
    status, _ = _post(ml_server, "/v2/tasks/image-classification/infer", CNN_X, params)
    assert status == 200


@pytest.mark.parametrize(
    ("task", "params", "status", "needle"),
    [
        ("digits", {"latency_ms": 100, "min_accuracy": 0.999}, 400, "accuracy 0.999 is unreachable"),
        ("digits", {"latency_ms": 0.0001, "min_accuracy": 0.5}, 400, "latency 0.0001 ms is unreachable"),
        ("digits", {"latency_ms": 10, "min_accuracy": 2}, 400, "minimum accuracy"),
        ("digits", {"latency_ms": "fast"}, 400, "latency_ms"),
        ("nope", {"latency_ms": 10}, 404, "unknown task"),
    ],
)
def test_unsatisfiable_queries(ml_server: RunningServer, task: str, params: dict[str, Any], status: int, needle: str) -> None:
    got, doc = _post(ml_server, f"/v2/tasks/{task}/infer", DIGIT_X, params)
    assert got == status, doc
    assert needle in doc["error"]


def test_never_answered_below_the_floor(ml_server: RunningServer) -> None:
    variants = ml_server.get_json("/v2/tasks")["variants"]
    best = max(v["accuracy"] for v in variants.values() if v["task"] == "digits")
    answered = 0
    for floor in (0.5, 0.9, 0.94, 0.95, 0.97, 0.98):
        status, doc = _post(ml_server, "/v2/tasks/digits/infer", DIGIT_X, {"latency_ms": 200, "min_accuracy": floor})
        if status == 200:
            assert variants[doc["parameters"]["variant"]]["accuracy"] >= floor
            answered += 1
        else:
            # refused only when no digits variant reaches the floor (200 ms is loose for all of them)
            assert status == 400 and "accuracy" in doc["error"], doc
            assert floor > best, (floor, best, doc)
    assert answered >= 1  # at least the 0.5 floor is served, so the served variant's accuracy was checked


def test_grpc_task_query(ml_server: RunningServer) -> None:
    # older tritonclients (2.41) send only int, bool and string parameters: numeric strings are accepted
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(ml_server.grpc_url)
    inp = grpcclient.InferInput("input", [1, 3, 32, 32], "FP32")
    inp.set_data_from_numpy(CNN_X)
    result = client.infer("", [inp], parameters={"task": "image-classification", "latency_ms": 50, "min_accuracy": "0.9"})
    response = result.get_response()
    assert response.model_name == "cnn"
    assert response.parameters["variant"].string_param == "cnn:int8-static"
    assert result.as_numpy("output").shape == (1, 10)


def test_query_cli(ml_server: RunningServer, tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "x.npz"
    np.savez(data, input=CNN_X)
    base = [sys.executable, "-m", "modelplex.cli", "query", "--url", f"http://{ml_server.http_url}", "--input", str(data)]
    ok = subprocess.run([*base, "--task", "image-classification", "--latency-ms", "50", "--min-accuracy", "0.9"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "cnn:int8-static" in ok.stdout and "top-1" in ok.stdout
    bad = subprocess.run([*base, "--task", "digits", "--latency-ms", "50", "--min-accuracy", "0.9999"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "accuracy" in bad.stderr
