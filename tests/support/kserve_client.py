"""The KServe Python SDK's v2 clients against a server; run as its own process.

kserve's generated gRPC modules and tritonclient's both register `inference.*` messages in
protobuf's default pool, so they cannot be imported into one process; the conformance tests run
this script beside the tritonclient ones and read its JSON report from stdout:
  python kserve_client.py HTTP_HOST:PORT GRPC_HOST:PORT  ->  {"check": value, ...}
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from models import ALL_TYPES

MODEL = "all_types"


def _request(binary: bool) -> tuple[InferRequest, dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    inputs, sent = [], {}
    for datatype, _, dtype in ALL_TYPES:
        if dtype == "object":
            x = np.array([[b"ab", "żó".encode()], [b"", b"x y"]], dtype=object)
        elif dtype == "bool":
            x = rng.integers(0, 2, (2, 2)).astype(bool)
        else:
            x = (rng.standard_normal((2, 2)) * 50).astype(dtype)
        name = f"in_{datatype.lower()}"
        tensor = InferInput(name, list(x.shape), datatype)
        tensor.set_data_from_numpy(x, binary_data=binary or datatype == "FP16")  # the SDK sends FP16 only binary
        inputs.append(tensor)
        sent[f"out_{datatype.lower()}"] = x
    return InferRequest(model_name=MODEL, infer_inputs=inputs, request_id="k1"), sent


def _values(x: np.ndarray) -> list[object]:
    """Elements as a flat list; JSON BYTES come back as str elements, compared as their UTF-8."""
    return [v.encode() if isinstance(v, str) else v for v in x.flatten().tolist()]


def _equal(response: object, sent: dict[str, np.ndarray]) -> dict[str, bool]:
    outputs = {o.name: o.as_numpy() for o in response.outputs}  # type: ignore[attr-defined]
    return {name: name in outputs and outputs[name].shape == x.shape and outputs[name].dtype == x.dtype
            and _values(outputs[name]) == _values(x) for name, x in sent.items()}


async def _rest(url: str) -> dict[str, object]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    base = f"http://{url}"
    report: dict[str, object] = {
        "rest_live": await client.is_server_live(base),
        "rest_ready": await client.is_server_ready(base),
        "rest_model_ready": await client.is_model_ready(base, MODEL),
    }
    for binary in (False, True):
        request, sent = _request(binary)
        response = await client.infer(base, request, model_name=MODEL)
        report[f"rest_infer_{'binary' if binary else 'json'}"] = _equal(response, sent)
    await client.close()
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", timeout=30))  # the SDK's default protocol
    try:
        await v1.infer(base, {"instances": [[1, 2]]}, model_name=MODEL)
        report["rest_v1"] = "answered"
    except httpx.HTTPStatusError as exc:
        report["rest_v1"] = [exc.response.status_code, exc.response.json().get("error", "")]
    await v1.close()
    return report


async def _grpc(url: str) -> dict[str, object]:
    client = InferenceGRPCClient(url, timeout=30)
    report: dict[str, object] = {
        "grpc_live": await client.is_server_live(),
        "grpc_ready": await client.is_server_ready(),
        "grpc_model_ready": await client.is_model_ready(MODEL),
    }
    request, sent = _request(True)
    report["grpc_infer"] = _equal(await client.infer(request), sent)
    await client.close()
    return report


async def main(http_url: str, grpc_url: str) -> dict[str, object]:
    return {**await _rest(http_url), **await _grpc(grpc_url)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
