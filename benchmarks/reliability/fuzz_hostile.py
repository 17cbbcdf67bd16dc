"""Hand-written hostile KServe v2 requests for fuzz.py: shapes that overflow, bodies that lie
about their length, compression bombs, malformed plans, undecodable gRPC messages."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from fuzz_cases import BOMB, GrpcCase, HttpCase, base_plan, dump, valid_json

from modelplex.serving.grpc_gen import grpc_service_pb2 as pb


# ---- hand-written hostile cases ------------------------------------------------------------
def _j(path: str, doc: Any, *headers: tuple[str, str]) -> HttpCase:
    return HttpCase("hostile", "POST", path, headers, doc if isinstance(doc, bytes) else dump(doc))


def _one(shape: Any, data: Any = None, dtype: str = "FP32", name: str = "x", **extra: Any) -> dict[str, Any]:
    inp = {"name": name, "datatype": dtype, "shape": shape, **({"data": data} if data is not None else {}), **extra}
    return {"inputs": [inp]}


def _binary(model: str, inputs: list[dict[str, Any]], tail: bytes, hlen: str | None = None) -> HttpCase:
    head = dump({"inputs": inputs})
    return _j(f"/v2/models/{model}/infer", head + tail, ("Inference-Header-Content-Length", hlen if hlen is not None else str(len(head))))


def hostile_http() -> list[HttpCase]:
    """The operator's findings and their neighbours, plus HTTP-level junk on fresh connections."""
    inf, bsz = "/v2/models/fp32/infer", "binary_data_size"
    many = base_plan(2)
    many["slices"] = [dict(many["slices"][0], slice_id=f"s{i}", cpus=[i % 2]) for i in range(200)]
    cases = [
        _j(inf, _one([1] * 65, [0.0])), _j(inf, _one([1] * 33, [0.0])), _j(inf, _one([2**63 - 1, 2**63 - 1], [0.0])),
        _j(inf, _one([2**64], [])), _j(inf, _one([0, 2**62, 2**62], [])), _j(inf, _one([-1, 4], [])),
        _j("/v2/models/text/infer", _one([1] * 65, ["a"], "BYTES", "text")),
        _binary("fp32", [{"name": "x", "datatype": "FP32", "shape": [1] * 65, "parameters": {bsz: 4}}], b"\0" * 4),
        _binary("text", [{"name": "text", "datatype": "BYTES", "shape": [1] * 65, "parameters": {bsz: 5}}], b"\1\0\0\0a"),
        _binary("text", [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "parameters": {bsz: 8}}], b"\xff\xff\xff\x7f" + b"abcd"),
        _binary("text", [{"name": "text", "datatype": "BYTES", "shape": [2**30, 2], "parameters": {bsz: 8}}], b"\0" * 8),
        _binary("fp32", [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {bsz: 16}}], b"\0" * 16, "-1"),
        _binary("fp32", [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {bsz: 16}}], b"\0" * 16, "1e2"),
        _binary("fp32", [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {bsz: 2**64}}], b"\0" * 16),
        _j("/v2/models/ints/infer", _one([1, 2], [300, 1], "UINT8", "u8")),
        _j("/v2/models/ints/infer", b'{"inputs":[{"name":"i32","datatype":"INT32","shape":[1,2],"data":[1e400,NaN]}]}'),
        _j("/v2/models/ints/infer", _one([1, 2], [True, 1], "INT32", "i32")),
        _j("/v2/models/ints/infer", _one([1, 2], ["1", "2"], "INT64", "i64")),
        _j("/v2/models/ints/infer", _one([1, 2], [0, 2**64 - 1], "UINT64", "u64")),
        _j("/v2/models/ints/infer", _one([1, 2], [1e5, 1], "FP16", "f16")),
        _j(inf, _one([1, 4], [[[0.0, 1.0], [2.0, 3.0]]])), _j(inf, _one([1, 4], [[0.0], [1.0, 2.0, 3.0]])),
        _j(inf, b"[" * 100000 + b"]" * 100000), _j(inf, b"\xef\xbb\xbf" + dump(valid_json("fp32"))), _j(inf, b"\xff\xfe{}"),
        _j(inf, b""), _j(inf, b"null"), _j(inf, b'{"inputs": [' + b'{"name":"x"},' * 20000 + b'{}]}'),
        _j(inf, valid_json("fp32"), ("Content-Encoding", "gzip")), _j(inf, BOMB, ("Content-Encoding", "gzip")),
        _j(inf, zlib.compress(b"\0" * (5 * 2**20)), ("Content-Encoding", "deflate")),
        _j(inf, gzip.compress(dump(valid_json("fp32"))) + b"junk", ("Content-Encoding", "gzip")),
        _j(inf, gzip.compress(dump(valid_json("fp32"))) * 2, ("Content-Encoding", "gzip")),
        _j(inf, dump(valid_json("fp32")), ("Content-Encoding", "br")),
        _j("/v2/plan", dump(many)), _j("/v2/plan", b"{}"), _j("/v2/plan", b"[]"), _j("/v2/plan", b"\x00"),
        _j("/v2/repository/models/%00/load", b""), _j("/v2/repository/models/../load", b""), _j("/v2/repository/models/.x/unload", b""),
    ]
    for key, value in (("batch", 0), ("share", -0.5), ("share", 2), ("rate_rps", -1)):
        bad = base_plan(2)
        bad["slices"][0]["assignments"][0][key] = value
        cases.append(_j("/v2/plan", bad))
    twice = base_plan(2)
    twice["slices"].append(dict(twice["slices"][0], slice_id="cpu0/s1"))
    cases.append(_j("/v2/plan", twice))
    raw = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /v2 HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
           b"POST /v2/models/fp32/infer HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}{}{}",
           b"POST /v2/models/fp32/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nab\r\n0\r\n\r\n",
           b"POST /v2/models/fp32/infer HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
           b"POST /v2/models/fp32/infer HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
           b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"GET /v2 HTTP/1.1\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
           b"GET /v2\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40]
    return cases + [HttpCase("hostile-raw", "?", "?", (), b"", r) for r in raw]


def hostile_grpc() -> list[GrpcCase]:
    def infer(name: str, dtype: str, shape: list[int], raw: list[bytes] | None = None, **contents: list[Any]) -> GrpcCase:
        msg = pb.ModelInferRequest(model_name="fp32" if dtype == "FP32" else "ints" if dtype != "BYTES" else "text")
        t = msg.inputs.add(name=name, datatype=dtype, shape=shape)
        for k, v in contents.items():
            getattr(t.contents, k).extend(v)
        msg.raw_input_contents.extend(raw or [])
        return GrpcCase("hostile", "ModelInfer", (msg.SerializeToString(),))

    big = 2**62
    return [infer("x", "FP32", [big, big, 4], [b""]), infer("x", "FP32", [2**63 - 1, 2], [b""]), infer("x", "FP32", [-(2**63), -1], [b""]),
            infer("x", "FP32", [1] * 65, [b"\0" * 4]), infer("x", "FP32", [1, 4], [b"\0" * 16, b"\0" * 16]),
            infer("x", "FP32", [1, 4], int_contents=[1, 2, 3, 4]), infer("x", "FP32", [1, 4], fp32_contents=[1.0] * 3),
            infer("i8", "INT8", [1, 2], int_contents=[300, -300]), infer("u8", "UINT8", [1, 2], uint_contents=[256, 2**32 - 1]),
            infer("f16", "FP16", [1, 2], fp32_contents=[1.0, 2.0]), infer("text", "BYTES", [1, 2], [b"\xff\xff\xff\xff"]),
            infer("text", "BYTES", [2**31, 2], [b"\0" * 8]), infer("x", "FP32", [1, 4], [b"\0" * 16], fp32_contents=[0.0] * 4),
            GrpcCase("hostile", "ModelInfer", (b"\xff" * 32,)), GrpcCase("hostile", "ModelStreamInfer", (b"\x0a\xff\xff",) * 3)]
