"""The wire checks both codecs run before any work: one table per path, each row a malformed
request and a piece of the 400 message it must get (gRPC: INVALID_ARGUMENT, the same checks)."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest

from modelplex.core.errors import ErrorCode, ModelplexError
from modelplex.core.tensors import DataType
from tritonclient.grpc import service_pb2 as pb  # the same messages; modelplex's clash with it in one process

from modelplex.serving.grpc_decode import decode_infer
from modelplex.serving.http_codec import decode_request, decompress
from modelplex.serving.validate import MAX_ELEMENTS, MAX_RANK, check_parameters, tensor_shape


def _doc(shape: Any, data: Any = None, dtype: str = "FP32", **extra: Any) -> bytes:
    inp: dict[str, Any] = {"name": "x", "datatype": dtype, "shape": shape, **extra}
    if data is not None:
        inp["data"] = data
    return json.dumps({"inputs": [inp]}, allow_nan=True).encode()


def _binary(shape: Any, blob: bytes, dtype: str = "FP32", size: Any = None) -> tuple[bytes, str]:
    head = json.dumps({"inputs": [{"name": "x", "datatype": dtype, "shape": shape,
                                   "parameters": {"binary_data_size": len(blob) if size is None else size}}]}).encode()
    return head + blob, str(len(head))


def _refused(fn: Any, *args: Any) -> str:
    with pytest.raises(ModelplexError) as err:
        fn(*args)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT, err.value.message
    return err.value.message


@pytest.mark.parametrize(
    ("shape", "needle"),
    [
        ([1] * (MAX_RANK + 1), f"at most {MAX_RANK}"),
        ([1] * 65, "65 dimensions"),
        ([2**63 - 1, 2**63 - 1], f"more than {MAX_ELEMENTS}"),
        ([0, 2**62, 2**62], f"more than {MAX_ELEMENTS}"),
        ([-1, 4], "shape[0] is -1"),
        ([1, 2.5], "non-negative integers"),
        ([True], "non-negative integers"),
        ("1,4", "list of non-negative integers"),
        (None, "list of non-negative integers"),
    ],
)
def test_shape_rules(shape: Any, needle: str) -> None:
    assert needle in _refused(tensor_shape, "x", shape)
    assert "input 'x'" in _refused(decode_request, "m", None, _doc(shape, [0.0]), None)


def test_shape_ok_and_count() -> None:
    assert tensor_shape("x", [2, 3, 0]) == ((2, 3, 0), 0)
    assert tensor_shape("x", []) == ((), 1)
    assert tensor_shape("x", [1] * MAX_RANK) == ((1,) * MAX_RANK, 1)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_doc([1, 2], [300, 1], "UINT8"), "value 300 is out of range for UINT8"),
        (_doc([1, 2], [-1, 1], "UINT16"), "out of range for UINT16"),
        (_doc([1, 2], [2**31, 1], "INT32"), "out of range for INT32"),
        (_doc([1, 2], [2**63, 1], "INT64"), "out of range for INT64"),
        (b'{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1e400]}]}', "not valid JSON"),
        (b'{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[NaN]}]}', "not valid JSON"),
        (_doc([1, 2], [1.5, 1], "INT32"), "must be integers (got 1.5)"),
        (_doc([1, 2], [True, False], "FP32"), "not booleans"),
        (_doc([1, 2], [1, True], "INT32"), "not booleans"),
        (_doc([1, 2], [1, 0], "BOOL"), "true or false"),
        (_doc([1, 2], ["1", "2"], "FP32"), "must be numbers"),
        (_doc([1, 2], [1, None], "FP32"), "must be numbers"),
        (_doc([1, 2], [1e5, 1], "FP16"), "out of range for FP16"),
        (_doc([2, 2], [[1, 2], [3]]), "ragged"),
        (_doc([2, 2], [[[1, 2], [3, 4]]]), "'data' has shape [1, 2, 2]"),
        (_doc([2], [[1], [2]]), "'data' has shape [2, 1]"),
        (_doc([1, 64], [0.0] * 10), "needs 64 elements, data has 10"),
        (_doc([1, 2], "12"), "'data' must be a list"),
        (_doc([1, 2], ["a", 1], "BYTES"), "BYTES data must be strings"),
        (_doc([2**20], [1.0]), "more than a"),
        (_doc([1], [1.0], "FP99"), "unknown datatype 'FP99'"),
        (_doc([1], [1.0], parameters={"binary_data_size": -1}), "binary_data_size must be a non-negative integer"),
        (_doc([1], [1.0], parameters=[1]), "'parameters' must be an object"),
        (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "parameters": {"p": {}}}).encode(),
         "parameter 'p' must be a string, number or boolean"),
        (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "parameters": {"timeout": "soon"}}).encode(),
         "timeout"),
        (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                     "parameters": {"binary_data_output": "yes"}}).encode(), "binary_data_output"),
        (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "id": {"a": 1}}).encode(), "'id'"),
        (json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                     "outputs": [{"name": "y", "parameters": {"binary_data": 3}}]}).encode(), "binary_data must be a boolean"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b'{"inputs": 5}', "non-empty 'inputs'"),
    ],
)
@pytest.mark.parametrize("pad", [0, 5000])  # 5000 spaces: large enough for serving.json_fast's path
def test_json_requests_refused(body: bytes, needle: str, pad: int) -> None:
    assert needle in _refused(decode_request, "m", None, body + b" " * pad, None)


@pytest.mark.parametrize(
    ("doc", "dtype", "expected"),
    [
        (_doc([1, 2], [0, 2**64 - 1], "UINT64"), np.uint64, [[0, 2**64 - 1]]),
        (_doc([2, 2], [[1, 2], [3, 4]], "INT8"), np.int8, [[1, 2], [3, 4]]),
        (_doc([2, 2], [1, 2, 3, 4], "FP16"), np.float16, [[1, 2], [3, 4]]),
        (_doc([1, 2], [True, False], "BOOL"), np.bool_, [[True, False]]),
        (_doc([0, 4], [], "INT32"), np.int32, np.zeros((0, 4))),
        (_doc([1, 2], ["a", "é"], "BYTES"), object, [[b"a", "é".encode()]]),
    ],
)
@pytest.mark.parametrize("pad", [0, 5000])
def test_json_requests_accepted(doc: bytes, dtype: Any, expected: Any, pad: int) -> None:
    arr = decode_request("m", None, doc + b" " * pad, None).inputs[0].array
    assert arr.dtype == np.dtype(dtype)
    assert arr.tolist() == np.asarray(expected, dtype=dtype).tolist()


@pytest.mark.parametrize(
    ("body_hlen", "needle"),
    [
        (_binary([1] * 65, b"\0" * 4), "65 dimensions"),
        (_binary([1, 4], b"\0" * 15), "binary_data_size is 15 bytes, shape [1, 4] of FP32 needs 16"),
        (_binary([1, 4], b"\0" * 16, size=2**40), "truncated"),
        (_binary([1, 4], b"\0" * 16, size=2**64), "binary_data_size must be a non-negative integer"),
        (_binary([1, 4], b"\0" * 16, size=True), "binary_data_size must be a non-negative integer"),
        (_binary([1, 2], b"\x02\x00", "BOOL"), "BOOL bytes must be 0 or 1"),
        (_binary([1000], b"\0" * 8, "BYTES"), "cannot hold the 1000 elements"),
        (_binary([1, 2], b"\xff\xff\xff\x7fabcd", "BYTES"), "input 'x': BYTES tensor data is truncated"),
        (_binary([1, 1], b"\x01\x00\x00\x00ab", "BYTES"), "input 'x': BYTES tensor data is truncated"),
        (_binary([1, 2], b"\x01\x00\x00\x00a" * 3, "BYTES"), "3 elements, shape needs 2"),
    ],
)
def test_binary_requests_refused(body_hlen: tuple[bytes, str], needle: str) -> None:
    assert needle in _refused(decode_request, "m", None, *body_hlen)


@pytest.mark.parametrize("hlen", ["-1", " 1_0", "0x10", "1e2", "99999999999999999999999", "\u0661\u0662", "", "nan", "100000"])
def test_header_length_nonsense(hlen: str) -> None:
    body, _ = _binary([1, 4], b"\0" * 16)
    assert "Inference-Header-Content-Length" in _refused(decode_request, "m", None, body, hlen)


@pytest.mark.parametrize(
    ("body", "encoding", "code", "needle"),
    [
        (gzip.compress(b"\0" * 5000), "gzip", ErrorCode.PAYLOAD_TOO_LARGE, "larger than the limit"),
        (zlib.compress(b"\0" * 5000), "deflate", ErrorCode.PAYLOAD_TOO_LARGE, "larger than the limit"),
        (gzip.compress(b"{}")[:-3], "gzip", ErrorCode.INVALID_ARGUMENT, "truncated"),
        (gzip.compress(b"{}") + b"junk", "gzip", ErrorCode.INVALID_ARGUMENT, "after the end"),
        (b"not gzip", "gzip", ErrorCode.INVALID_ARGUMENT, "not valid gzip"),
        (b"{}", "br", ErrorCode.INVALID_ARGUMENT, "unsupported Content-Encoding"),
    ],
)
def test_encodings(body: bytes, encoding: str, code: ErrorCode, needle: str) -> None:
    with pytest.raises(ModelplexError) as err:
        decompress(body, encoding, 1000)
    assert err.value.code is code and needle in err.value.message


def _msg(dtype: str, shape: list[int], raw: list[bytes] | None = None, **contents: list[Any]) -> Any:
    msg = pb.ModelInferRequest(model_name="m")
    t = msg.inputs.add(name="x", datatype=dtype, shape=shape)
    for field, values in contents.items():
        getattr(t.contents, field).extend(values)
    msg.raw_input_contents.extend(raw or [])
    return msg


def _with_param(msg: Any, key: str, **value: Any) -> Any:
    msg.parameters[key].CopyFrom(pb.InferParameter(**value))
    return msg


@pytest.mark.parametrize(
    ("msg", "needle"),
    [
        (_msg("FP32", [2**62, 2**62, 4], [b""]), f"more than {MAX_ELEMENTS}"),
        (_msg("FP32", [2**63 - 1, 2], [b""]), f"more than {MAX_ELEMENTS}"),
        (_msg("FP32", [-(2**63)], [b""]), "dimensions must be non-negative"),
        (_msg("FP32", [1] * 65, [b"\0" * 4]), "65 dimensions"),
        (_msg("FP32", [1, 4], [b"\0" * 16, b"\0" * 16]), "1 inputs but 2 raw_input_contents"),
        (_msg("FP32", [1, 4], [b"\0" * 12]), "raw content is 12 bytes"),
        (_msg("FP32", [1, 4], [b"\0" * 16], fp32_contents=[0.0] * 4), "both typed contents and raw_input_contents"),
        (_msg("FP32", [1, 4], int_contents=[1, 2, 3, 4]), "carries int_contents"),
        (_msg("FP32", [1, 4], fp32_contents=[1.0] * 3), "needs 4 elements, data has 3"),
        (_msg("INT8", [1, 2], int_contents=[300, 1]), "value 300 is out of range for INT8"),
        (_msg("UINT16", [1, 2], uint_contents=[70000, 1]), "out of range for UINT16"),
        (_msg("FP16", [1, 2], fp32_contents=[1.0, 2.0]), "must be sent as raw_input_contents"),
        (_msg("BYTES", [2**20, 2], [b"\0" * 8]), "cannot hold"),
        (_msg("BYTES", [1, 1], [b"\xff\xff\xff\xff"]), "BYTES tensor data is truncated"),
        (_msg("NOPE", [1], [b""]), "unknown datatype 'NOPE'"),
        (_with_param(_msg("FP32", [1], [b"\0" * 4]), "odd"), "got no value"),
        (_with_param(_msg("FP32", [1], [b"\0" * 4]), "timeout", double_param=float("nan")), "timeout"),
        (_with_param(_msg("FP32", [1], [b"\0" * 4]), "binary_data_output", int64_param=1), "binary_data_output"),
        (pb.ModelInferRequest(model_name="m"), "at least one input"),
    ],
)
def test_grpc_requests_refused(msg: Any, needle: str) -> None:
    assert needle in _refused(decode_infer, msg)


def test_grpc_typed_and_raw_accepted() -> None:
    req = decode_infer(_msg("INT16", [1, 2], int_contents=[-5, 7]))
    assert req.inputs[0].array.dtype == np.int16 and req.inputs[0].array.tolist() == [[-5, 7]]
    req = decode_infer(_msg("UINT64", [2], uint64_contents=[0, 2**64 - 1]))
    assert req.inputs[0].array.tolist() == [0, 2**64 - 1]
    req = decode_infer(_msg("FP32", [1, 2], [np.array([[1, 2]], np.float32).tobytes()]))
    assert req.inputs[0].array.tolist() == [[1.0, 2.0]] and req.inputs[0].datatype is DataType.FP32


@pytest.mark.parametrize(("params", "ok"), [({"timeout": 1000, "task": "t", "flag": True, "x": 1.5}, True),
                                             ({"timeout": -1}, False), ({"a": [1]}, False), ({"a": None}, False)])
def test_parameters(params: dict[str, Any], ok: bool) -> None:
    if ok:
        check_parameters(params)
    else:
        _refused(check_parameters, params)
