"""What fuzz.py sends: the model repository it serves, hypothesis strategies for malformed
KServe v2 HTTP and gRPC requests (each a valid request with one to three things broken, or junk),
(fuzz_hostile.py holds the hand-written hostile cases). Cases are plain data; fuzz.py sends them."""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from typing import Any, Callable

from hypothesis import strategies as st

from fuzz_models import MODELS, build_repository, raw_tensor, valid_arrays, valid_json

from modelplex.serving.grpc_gen import grpc_service_pb2 as pb

__all__ = ["MODELS", "build_repository", "valid_arrays", "valid_json"]  # fuzz.py reads them here too

GRPC_SERVICE = "/inference.GRPCInferenceService/"


@dataclass(frozen=True)
class HttpCase:
    """One HTTP request; `raw` (when set) is sent as is on a fresh connection."""

    family: str  # which generator made it (for the report)
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    raw: bytes | None = None


@dataclass(frozen=True)
class GrpcCase:
    """One gRPC call: serialized request(s) for a method (several for the stream)."""

    family: str
    method: str  # e.g. "ModelInfer"
    payloads: tuple[bytes, ...]


# ---- building blocks ----------------------------------------------------------------------
MODEL_PATHS = st.sampled_from([*MODELS, "nope", "fp32", "ints", "text"])
DTYPES = st.one_of(st.sampled_from(["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                                    "FP16", "FP32", "FP64", "BYTES", "BF16", "fp32", "FP99", "", "STRING"]), st.text(max_size=6))
BIG = [2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63)]
DIMS = st.one_of(st.integers(-3, 10), st.sampled_from(BIG), st.integers(0, 2**40))
SHAPES = st.one_of(
    st.lists(DIMS, max_size=6),
    st.lists(st.integers(0, 2), min_size=33, max_size=70),
    st.lists(st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.booleans(), st.none()), min_size=1, max_size=4),
    st.one_of(st.integers(), st.text(max_size=4), st.none(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([300, -1, 2**31, 2**63, 2**64, 65505, 1e39, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
)
JSON_ANY = st.recursive(SCALARS, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=4), c, max_size=3)),
                        max_leaves=12)
PARAMS = st.dictionaries(
    st.one_of(st.sampled_from(["timeout", "binary_data_output", "task", "latency_ms", "min_accuracy", "priority"]), st.text(max_size=5)),
    JSON_ANY, max_size=3,
)
ODD_NAMES = st.one_of(st.text(max_size=12), st.sampled_from(["..", ".", "%00", "a/b", "x" * 300, "nope", "%2e%2e", "\u00e9", "a b"]))


def dump(doc: Any) -> bytes:
    """JSON as a careless client writes it: big ints and NaN/Infinity included."""
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


# ---- HTTP infer mutations (each takes draw and a request document) -------------------------
def _pick_input(draw: Any, doc: dict[str, Any]) -> dict[str, Any] | None:
    inputs = doc.get("inputs")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        return inputs[draw(st.integers(0, len(inputs) - 1))]  # type: ignore[no-any-return]
    return None


def _mutate_field(key: str, values: st.SearchStrategy[Any]) -> Callable[[Any, dict[str, Any]], None]:
    def mutate(draw: Any, doc: dict[str, Any]) -> None:
        inp = _pick_input(draw, doc)
        if inp is not None:
            inp[key] = draw(values)

    return mutate


def _m_element(draw: Any, doc: dict[str, Any]) -> None:
    inp = _pick_input(draw, doc)
    if inp is not None and isinstance(inp.get("data"), list) and inp["data"]:
        inp["data"][draw(st.integers(0, len(inp["data"]) - 1))] = draw(SCALARS)


def _m_nest(draw: Any, doc: dict[str, Any]) -> None:
    inp = _pick_input(draw, doc)
    if inp is not None and isinstance(inp.get("data"), list):
        data, k = inp["data"], draw(st.integers(1, 3))
        inp["data"] = [data[i : i + k] for i in range(0, len(data), k)] if draw(st.booleans()) else [data, data]


def _m_drop(draw: Any, doc: dict[str, Any]) -> None:
    inp = _pick_input(draw, doc)
    if inp is not None:
        inp.pop(draw(st.sampled_from(["name", "datatype", "shape", "data"])), None)


def _m_doc(draw: Any, doc: dict[str, Any]) -> None:
    key = draw(st.sampled_from(["inputs", "outputs", "parameters", "id", "model_name"]))
    doc[key] = draw(st.one_of(JSON_ANY, PARAMS, st.just([]), st.lists(st.fixed_dictionaries(
        {"name": ODD_NAMES, "parameters": PARAMS}), max_size=2)))


def _m_duplicate(draw: Any, doc: dict[str, Any]) -> None:
    if isinstance(doc.get("inputs"), list):
        doc["inputs"] = doc["inputs"] * draw(st.integers(2, 3))


MUTATIONS: list[Callable[[Any, dict[str, Any]], None]] = [
    _mutate_field("shape", SHAPES), _mutate_field("datatype", DTYPES), _mutate_field("name", st.one_of(ODD_NAMES, JSON_ANY)),
    _mutate_field("data", JSON_ANY), _mutate_field("parameters", st.one_of(PARAMS, st.fixed_dictionaries(
        {"binary_data_size": st.one_of(st.integers(-5, 2**65), JSON_ANY)}))),
    _m_element, _m_element, _m_nest, _m_drop, _m_doc, _m_duplicate,
]


@st.composite
def infer_json(draw: Any) -> HttpCase:
    model = draw(MODEL_PATHS)
    doc = valid_json(model if model in MODELS else "fp32", draw(st.integers(0, 10)))
    for _ in range(draw(st.integers(1, 3))):
        draw(st.sampled_from(MUTATIONS))(draw, doc)
    return HttpCase("infer-json", "POST", f"/v2/models/{model}/infer", (("Content-Type", "application/json"),), dump(doc))


@st.composite
def infer_binary(draw: Any) -> HttpCase:
    """The binary extension: sizes, the header length and BYTES prefixes broken."""
    model = draw(st.sampled_from(list(MODELS)))
    arrays = valid_arrays(model, draw(st.integers(1, 9)))
    header: dict[str, Any] = {"inputs": []}
    blobs = []
    for name, dtype, _ in MODELS[model]:
        blob = raw_tensor(dtype, arrays[name])
        if draw(st.integers(0, 3)) == 0:
            cut = draw(st.integers(0, len(blob)))
            blob = blob[:cut] + draw(st.binary(max_size=12)) if draw(st.booleans()) else blob[:cut]
        size = draw(st.one_of(st.just(len(blob)), st.integers(-2, len(blob) + 9), st.sampled_from(BIG), JSON_ANY))
        shape = draw(st.one_of(st.just(list(arrays[name].shape)), SHAPES))
        header["inputs"].append({"name": name, "datatype": draw(st.one_of(st.just(dtype), DTYPES)), "shape": shape,
                                 "parameters": {"binary_data_size": size}})
        blobs.append(blob)
    if draw(st.booleans()):
        header["parameters"] = draw(PARAMS)
    head = dump(header)
    body = head + b"".join(blobs) + draw(st.binary(max_size=4))
    hlen = draw(st.one_of(st.just(str(len(head))), st.integers(-3, len(body) + 5).map(str), st.sampled_from(
        ["", " 12", "1_0", "0x10", "1e3", "99999999999999999999999", "-0", "\u0661\u0662", "12, 12", "nan"])))
    headers = (("Content-Type", "application/octet-stream"), ("Inference-Header-Content-Length", hlen))
    return HttpCase("infer-binary", "POST", f"/v2/models/{model}/infer", headers, body)


BOMB = gzip.compress(b"\0" * (5 * 2**20))  # inflates past a 4 MB body limit


@st.composite
def encoded(draw: Any) -> HttpCase:
    """Content-Encoding: valid, truncated, trailing junk, bombs, lies."""
    inner = draw(st.one_of(infer_json(), st.just(HttpCase("", "POST", "/v2/models/fp32/infer", (), dump(valid_json("fp32"))))))
    label = draw(st.sampled_from(["gzip", "deflate", "br", "GZIP", "gzip, gzip", "identity", "x-gzip", " deflate ", ""]))
    packed = draw(st.sampled_from(["gzip", "deflate", "raw", "bomb", "double"]))
    packers: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress, "raw": bytes,
                                                    "bomb": lambda b: BOMB, "double": lambda b: gzip.compress(gzip.compress(b))}
    data = packers[packed](inner.body)
    how = draw(st.sampled_from(["whole", "cut", "tail", "flip"]))
    if how == "cut":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif how == "tail":
        data += draw(st.binary(min_size=1, max_size=16))
    elif how == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]
    return HttpCase("encoding", "POST", inner.path, (("Content-Encoding", label),), data)


ROUTES = ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{m}", "/v2/models/{m}/ready", "/v2/models/{m}/config",
          "/v2/models/{m}/stats", "/v2/models/stats", "/v2/models/{m}/versions/{v}", "/v2/models/{m}/versions/{v}/ready",
          "/v2/models/{m}/versions/{v}/config", "/v2/models/{m}/versions/{v}/stats", "/v2/models/{m}/versions/{v}/infer",
          "/v2/models/{m}/infer", "/v2/tasks/{m}/infer", "/v2/tasks", "/v2/repository/index", "/v2/repository/models/{o}/load",
          "/v2/repository/models/{o}/unload", "/v2/status", "/v2/plan", "/metrics", "/", "/v2/", "/v3/x", "//v2//models//"]
SEGMENT = st.one_of(MODEL_PATHS, st.text(alphabet="abc.%20/-_~!$&'()*+,;=:@", max_size=10), st.sampled_from(
    ["..", "%2e%2e", "%00", "%2F", "x" * 1000, "%ff%fe", "1", "0", "-1", "%E9"]))
OTHER = st.one_of(st.text(alphabet="abcxyz.%20-_~", min_size=1, max_size=10), st.sampled_from(["..", "%00", "%2F", "nope", "x" * 500]))


@st.composite
def routes(draw: Any) -> HttpCase:
    """Every REST route with odd names, methods, queries and bodies (load/unload: never a real model)."""
    template = draw(st.sampled_from(ROUTES))
    path = template.replace("{m}", draw(SEGMENT)).replace("{v}", draw(SEGMENT)).replace("{o}", draw(OTHER))
    if draw(st.booleans()):
        path += "?" + draw(st.text(alphabet="a=&%1;?", max_size=12))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "BREW"]))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64), JSON_ANY.map(dump)))
    return HttpCase("routes", method, path.replace(" ", "%20"), (("Content-Type", draw(st.sampled_from(
        ["application/json", "text/plain", "", "application/octet-stream; charset=\x7f"]))),), body)


def base_plan(cores: int) -> dict[str, Any]:
    """A plan the fuzz server could run: fp32 on core 0 (every plan case breaks it)."""
    return {"policy": "fuzz", "devices": [{"device_id": "cpu0", "kind": "cpu", "capacity": cores}], "unserved": {},
            "slices": [{"slice_id": "cpu0/s0", "device_id": "cpu0", "size": 1, "cpus": [0], "processes": 1, "memory_mb": 0.0,
                        "duty_cycle_ms": 0.0, "utilisation": 0.1,
                        "assignments": [{"model": "fp32", "batch": 1, "rate_rps": 1.0, "share": 1.0, "latency_ms": 1.0}]}]}


PLAN_DEFECTS: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("assignment", "batch", st.one_of(st.integers(-3, 0), st.sampled_from([10**6, 2**63]), SCALARS.filter(lambda v: not isinstance(v, int)))),
    ("assignment", "share", st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0001), st.just(float("nan")))),
    ("assignment", "rate_rps", st.one_of(st.floats(max_value=-0.001), st.just(float("inf")), st.text(max_size=3))),
    ("assignment", "model", st.one_of(ODD_NAMES.filter(lambda n: n not in MODELS), JSON_ANY)),
    ("slice", "cpus", st.one_of(st.lists(st.integers(-2, 70), min_size=1, max_size=5).filter(lambda c: max(c) >= 2 or min(c) < 0 or
                                                                                            len(set(c)) < len(c)), JSON_ANY)),
    ("slice", "processes", st.one_of(st.integers(-2, 0), st.integers(9, 10**6), JSON_ANY)),
    ("slice", "assignments", st.one_of(st.just([]), JSON_ANY)),
    ("slice", "device_id", st.sampled_from(["gpu0", "gpu7", "cpu9", ""])),
    ("slice", "duty_cycle_ms", st.one_of(st.floats(max_value=-0.1), st.just(float("inf")))),
    ("plan", "devices", st.one_of(JSON_ANY, st.just([{"device_id": "gpu0", "kind": "gpu-mps", "capacity": 100}]))),
    ("plan", "slices", st.one_of(JSON_ANY, st.just([]))),
    ("plan", "policy", st.one_of(st.integers(), st.none())),
]


def _first(items: Any) -> dict[str, Any]:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


@st.composite
def plans(draw: Any) -> HttpCase:
    """POST /v2/plan with at least one defect: bad fields, repeated cores, too many slices, junk."""
    doc = base_plan(2)
    many = draw(st.integers(0, 3))
    if many == 3:  # more slices than cores; they repeat cores too
        doc["slices"] = [dict(doc["slices"][0], slice_id=f"s{i}", cpus=[i % 2]) for i in range(draw(st.integers(3, 200)))]
    for _ in range(draw(st.integers(1 if many < 3 else 0, 3))):
        where, key, values = draw(st.sampled_from(PLAN_DEFECTS))
        target = doc if where == "plan" else _first(doc.get("slices")) if where == "slice" else _first(_first(doc.get("slices")).get("assignments"))
        if target:
            target[key] = draw(values)
    if draw(st.integers(0, 5)) == 0 and _first(doc.get("slices")):
        doc["slices"].append(dict(doc["slices"][0], slice_id="cpu0/s1"))  # the same core twice
    body = dump(doc) if draw(st.integers(0, 9)) else draw(st.binary(max_size=40))
    return HttpCase("plan", "POST", "/v2/plan", (("Content-Type", "application/json"),), body)


def http_cases() -> st.SearchStrategy[HttpCase]:
    junk = st.builds(lambda m, b: HttpCase("junk-body", "POST", f"/v2/models/{m}/infer", (), b), MODEL_PATHS,
                     st.one_of(st.binary(max_size=200), JSON_ANY.map(dump)))
    return st.one_of(infer_json(), infer_json(), infer_binary(), encoded(), routes(), plans(), junk)


# ---- gRPC ------------------------------------------------------------------------------------
_CONTENTS = {"bool_contents": st.booleans(), "int_contents": st.integers(-(2**31), 2**31 - 1),
             "int64_contents": st.integers(-(2**63), 2**63 - 1), "uint_contents": st.integers(0, 2**32 - 1),
             "uint64_contents": st.integers(0, 2**64 - 1), "fp32_contents": st.floats(width=32),
             "fp64_contents": st.floats(), "bytes_contents": st.binary(max_size=8)}
GRPC_DIMS = st.one_of(st.integers(-3, 10), st.sampled_from([2**31, 2**62, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
GRPC_SHAPES = st.one_of(st.lists(GRPC_DIMS, max_size=6), st.lists(st.integers(0, 2), min_size=33, max_size=70),
                        st.lists(st.sampled_from([2**62, 2**61, 3]), min_size=2, max_size=4))


def _param(p: Any, value: Any) -> None:
    if isinstance(value, bool):
        p.bool_param = value
    elif isinstance(value, int):
        p.int64_param = value
    elif isinstance(value, float):
        p.double_param = value
    elif isinstance(value, str):
        p.string_param = value  # None: a parameter with no value set


GRPC_PARAMS = st.dictionaries(st.one_of(st.sampled_from(["timeout", "binary_data_output", "task", "latency_ms"]), st.text(max_size=4)),
                              st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=5)),
                              max_size=3)


@st.composite
def infer_message(draw: Any) -> bytes:
    """A ModelInferRequest from a valid one with things broken: shapes (int64 overflow), the
    datatype, typed contents of another kind or count, raw contents' count and sizes, parameters."""
    model = draw(MODEL_PATHS)
    specs = MODELS.get(model, MODELS["fp32"])
    arrays = valid_arrays(model if model in MODELS else "fp32", draw(st.integers(0, 9)))
    msg = pb.ModelInferRequest(model_name=model, model_version=draw(st.sampled_from(["", "", "1", "2", "x"])), id=draw(st.text(max_size=4)))
    typed = draw(st.integers(0, 3)) == 0
    for name, dtype, _ in specs:
        t = msg.inputs.add(name=draw(st.one_of(st.just(name), ODD_NAMES)), datatype=draw(st.one_of(st.just(dtype), DTYPES)))
        t.shape.extend(draw(st.one_of(st.just(list(arrays[name].shape)), GRPC_SHAPES)))
        for k, v in draw(GRPC_PARAMS).items():
            _param(t.parameters[k], v)
        if typed:
            field = draw(st.sampled_from(sorted(_CONTENTS)))
            getattr(t.contents, field).extend(draw(st.lists(_CONTENTS[field], max_size=40)))
        else:
            blob = raw_tensor(dtype, arrays[name])
            if draw(st.integers(0, 2)) == 0:
                blob = blob[: draw(st.integers(0, len(blob)))] + draw(st.binary(max_size=9))
            msg.raw_input_contents.append(blob)
    if not typed and draw(st.integers(0, 4)) == 0:
        del msg.raw_input_contents[draw(st.integers(0, len(msg.raw_input_contents) - 1))]
    if draw(st.integers(0, 3)) == 0:
        del msg.inputs[draw(st.integers(0, len(msg.inputs) - 1)) :]
    for k, v in draw(GRPC_PARAMS).items():
        _param(msg.parameters[k], v)
    for o in draw(st.lists(ODD_NAMES, max_size=2)):
        msg.outputs.add(name=o)
    raw = msg.SerializeToString()
    cut = draw(st.integers(0, 9))
    if cut == 0 and raw:  # bytes that are not a message
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :] if draw(st.booleans()) else raw[:i]
    return raw  # type: ignore[no-any-return]


def _named(method: str, cls: Any) -> st.SearchStrategy[GrpcCase]:
    return st.builds(lambda n, v: GrpcCase("grpc-" + method, method, (cls(name=n, version=v).SerializeToString(),)),
                     st.one_of(MODEL_PATHS, ODD_NAMES), st.sampled_from(["", "1", "2", "x" * 50]))


def grpc_cases() -> st.SearchStrategy[GrpcCase]:
    infer = infer_message().map(lambda b: GrpcCase("grpc-infer", "ModelInfer", (b,)))
    stream = st.lists(infer_message(), min_size=1, max_size=4).map(lambda bs: GrpcCase("grpc-stream", "ModelStreamInfer", tuple(bs)))
    repo = st.builds(lambda m, n: GrpcCase("grpc-repo", m, (getattr(pb, m + "Request")(model_name=n).SerializeToString(),)),
                     st.sampled_from(["RepositoryModelLoad", "RepositoryModelUnload"]), OTHER)
    index = st.builds(lambda r, ready: GrpcCase("grpc-index", "RepositoryIndex", (pb.RepositoryIndexRequest(
        repository_name=r, ready=ready).SerializeToString(),)), st.text(max_size=5), st.booleans())
    junk = st.builds(lambda m, b: GrpcCase("grpc-junk", m, (b,)), st.sampled_from(
        ["ModelInfer", "ModelMetadata", "ModelConfig", "ModelStatistics", "RepositoryIndex", "ModelReady", "ServerMetadata"]),
        st.binary(min_size=1, max_size=64))
    return st.one_of(infer, infer, infer, stream, _named("ModelMetadata", pb.ModelMetadataRequest),
                     _named("ModelConfig", pb.ModelConfigRequest), _named("ModelStatistics", pb.ModelStatisticsRequest),
                     _named("ModelReady", pb.ModelReadyRequest), repo, index, junk)
