"""KServe v2 REST bodies <-> InferRequest/InferResponse: JSON and the binary tensor extension."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import orjson

from modelplex.core.errors import InvalidArgumentError, PayloadTooLargeError
from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, serialize_bytes_tensor
from modelplex.repository.encoding import to_triton_json
from modelplex.serving.messages import ModelMetadata, ModelStatistics, RepositoryEntry, ServerMetadata, TensorMetadata
from modelplex.serving.json_data import JsonData, json_array
from modelplex.serving.json_fast import numeric_document
from modelplex.serving.shm import BYTE_SIZE, REGION, shm_ref
from modelplex.serving.types import InferInput, InferRequest, InferResponse, RequestedOutput
from modelplex.serving.validate import bytes_array, check_parameters, fixed_array, label, tensor_shape


def decompress(body: bytes, encoding: str, limit_bytes: int) -> bytes:
    """Undo Content-Encoding gzip/deflate, refusing to inflate past the body limit."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise InvalidArgumentError(f"unsupported Content-Encoding {encoding[:40]!r} (use gzip or deflate)")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit_bytes + 1)
    except zlib.error as exc:
        raise InvalidArgumentError(f"request body is not valid {encoding} data: {exc}") from None
    if len(out) > limit_bytes or d.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed request body is larger than the limit of {limit_bytes} bytes")
    if not d.eof:
        raise InvalidArgumentError(f"request body is truncated {encoding} data")
    if d.unused_data:
        raise InvalidArgumentError(f"request body has {len(d.unused_data)} bytes after the end of its {encoding} data")
    return out


def _header_length(header_length: str | None, body_len: int) -> int:
    """The JSON part's length: the Inference-Header-Content-Length header, else the whole body."""
    if header_length is None:
        return body_len
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidArgumentError(f"Inference-Header-Content-Length {header_length[:40]!r} is not a non-negative integer")
    json_len = int(text)
    if json_len > body_len:
        raise InvalidArgumentError(f"Inference-Header-Content-Length is {json_len} but the body has only {body_len} bytes")
    return json_len


def decode_request(model: str, version: str | None, body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer body; `header_length` is the Inference-Header-Content-Length header.
    Every rule of serving.validate is checked here, before any tensor is built."""
    json_len = _header_length(header_length, len(body))
    head = body[:json_len]
    doc = numeric_document(head)  # float `data` read straight into arrays, when that applies
    if doc is None:
        try:
            doc = orjson.loads(head)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgumentError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError("request body must be a JSON object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        if "instances" in doc:
            raise InvalidArgumentError("unsupported protocol: 'instances' is a KServe v1 request; this server speaks "
                                       "KServe v2: {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}]}")
        raise InvalidArgumentError("request needs a non-empty 'inputs' list")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidArgumentError("'parameters' must be an object")
    check_parameters(params)
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise InvalidArgumentError("'id' must be a string")
    # inputs whose `data` still needs reading (not binary, not read by numeric_document): else no scan
    has_data = any(isinstance(raw, dict) and "data" in raw and not isinstance(raw["data"], np.ndarray) for raw in raw_inputs)
    json_data = _what_data_holds(head, doc, json_len) if has_data else JsonData(json_len, False, False)
    inputs = _decode_inputs(raw_inputs, memoryview(body)[json_len:], json_data)
    outputs = _decode_outputs(doc.get("outputs"))
    return InferRequest(model, version, inputs, outputs, req_id, params)


_NUMBER_TEXT = b"0123456789.,eE-+[] \t\r\n"  # all a numeric `data` array is written with


def _what_data_holds(head: bytes, doc: Any, budget: int) -> JsonData:
    """What the `data` arrays may hold besides numbers. One pass over the text, at C speed: with
    the number characters taken out, what is left is the document's keys and other values; when
    it holds no more true/false, quote characters or nulls than the document has outside its
    `data` arrays, those arrays are numbers only. A string that happens to spell them, or an
    escaped quote, only costs the exact checks."""
    rest = head.translate(None, _NUMBER_TEXT)  # "true" -> "tru", "false" -> "fals"
    bools = rest.count(b"tru") + rest.count(b"fals")
    outside = _Outside()
    outside.walk(doc)
    may_hold_bools = bools > 0 and bools > outside.bools
    plain = not may_hold_bools and rest.count(b'"') <= outside.quotes and rest.count(b"null") <= outside.nulls
    return JsonData(budget, may_hold_bools, plain)


class _Outside:
    """Counts of what a request holds outside its inputs' `data`: true/false values, the quote
    characters of its keys and strings, nulls."""

    def __init__(self) -> None:
        self.bools = 0  # true/false values
        self.quotes = 0  # quote characters (two per key or string)
        self.nulls = 0  # null values

    def walk(self, doc: Any, key: str = "") -> None:
        if doc is True or doc is False:
            self.bools += 1
        elif doc is None:
            self.nulls += 1
        elif isinstance(doc, str):
            self.quotes += 2
        elif isinstance(doc, dict):
            for k, v in doc.items():
                self.quotes += 2
                if k != "data":
                    self.walk(v, k)
        elif isinstance(doc, list) and key in ("inputs", "outputs", ""):
            for v in doc:
                self.walk(v)


def _decode_inputs(raw_inputs: list[Any], binary: memoryview, json_data: JsonData) -> list[InferInput]:
    """The request's inputs: JSON `data`, or the binary extension's bytes after the JSON header."""
    pos = 0
    inputs: list[InferInput] = []
    for raw in raw_inputs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidArgumentError("each input needs a 'name'")
        name = raw["name"]
        if not isinstance(raw.get("datatype"), str):
            raise InvalidArgumentError(f"input {label(name)} needs a 'datatype'")
        dtype = _datatype(name, raw["datatype"])
        shape, count = tensor_shape(name, raw.get("shape"))
        iparams = raw.get("parameters") or {}
        if not isinstance(iparams, dict):
            raise InvalidArgumentError(f"input {label(name)}: 'parameters' must be an object")
        check_parameters(iparams, f"input {label(name)}")
        size = iparams.get("binary_data_size")
        ref = shm_ref(iparams, f"input {label(name)}")
        if ref is not None:  # read from the region by the data plane
            inputs.append(InferInput(name, dtype, shape, np.empty(0, dtype.numpy), ref))
            continue
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidArgumentError(f"input {label(name)}: binary_data_size must be a non-negative integer")
            if pos + size > len(binary):
                raise InvalidArgumentError(
                    f"input {label(name)}: binary data is truncated ({len(binary) - pos} bytes left, binary_data_size {size})"
                )
            chunk = binary[pos : pos + size]
            pos += size
            if dtype is DataType.BYTES:
                array = bytes_array(name, shape, count, chunk)
            else:
                array = fixed_array(name, dtype, shape, count, chunk, "binary_data_size")
        elif "data" in raw:
            array = json_array(raw["data"], dtype, shape, count, name, json_data)
        else:
            raise InvalidArgumentError(f"input {label(name)} has neither 'data' nor binary_data_size")
        inputs.append(InferInput(name, dtype, shape, array))
    if pos != len(binary):
        raise InvalidArgumentError(f"request has {len(binary) - pos} bytes of binary data that no input claims")
    return inputs


def _datatype(name: str, raw: str) -> DataType:
    try:
        return DataType.parse(raw)
    except InvalidArgumentError:
        raise InvalidArgumentError(f"input {label(name)}: unknown datatype {label(raw)}") from None


def _decode_outputs(raw_outputs: Any) -> list[RequestedOutput] | None:
    if not raw_outputs:
        return None
    if not isinstance(raw_outputs, list):
        raise InvalidArgumentError("'outputs' must be a list")
    outputs = []
    for o in raw_outputs:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidArgumentError("each requested output needs a 'name'")
        oparams = o.get("parameters") or {}
        if not isinstance(oparams, dict):
            raise InvalidArgumentError(f"output {label(o['name'])}: 'parameters' must be an object")
        bin_flag = oparams.get("binary_data")
        if bin_flag is not None and not isinstance(bin_flag, bool):
            raise InvalidArgumentError(f"output {label(o['name'])}: binary_data must be a boolean, got {bin_flag!r}")
        outputs.append(RequestedOutput(o["name"], bin_flag, shm_ref(oparams, f"output {label(o['name'])}")))
    return outputs


def _json_data(array: np.ndarray, dtype: DataType) -> Any:
    if dtype is DataType.BYTES:
        return [b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b) for b in array.reshape(-1)]
    if dtype is DataType.FP16:
        return array.astype(np.float32).reshape(-1)
    return np.ascontiguousarray(array).reshape(-1)


def encode_response(request: InferRequest, response: InferResponse) -> tuple[bytes, int | None]:
    """Body and, when any output is binary, the JSON header length for the response header."""
    default_binary = bool(request.parameters.get("binary_data_output", False))
    wanted = {o.name: o.binary for o in request.outputs} if request.outputs else {}
    outs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in response.outputs:
        flag = wanted.get(out.name)
        binary = default_binary if flag is None else flag
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype.value, "shape": list(out.shape)}
        if out.shm is not None:  # written into shared memory: no data here
            entry["parameters"] = {REGION: out.shm.region, BYTE_SIZE: out.shm.byte_size}
        elif binary:
            raw = (
                serialize_bytes_tensor(out.array)
                if out.datatype is DataType.BYTES
                else np.ascontiguousarray(out.array).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = _json_data(out.array, out.datatype)
        outs.append(entry)
    doc: dict[str, Any] = {"model_name": response.model, "model_version": response.version, "outputs": outs}
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    head = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


# ---- typed data-plane answers as KServe v2 JSON ----------------------------------------------
def server_metadata_json(m: ServerMetadata) -> dict[str, Any]:
    return {"name": m.name, "version": m.version, "extensions": list(m.extensions)}


def model_metadata_json(m: ModelMetadata) -> dict[str, Any]:
    def tensor(t: TensorMetadata) -> dict[str, Any]:
        return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}

    return {"name": m.name, "versions": list(m.versions), "platform": m.platform,
            "inputs": [tensor(t) for t in m.inputs], "outputs": [tensor(t) for t in m.outputs]}


def model_config_json(config: ModelConfig) -> dict[str, Any]:
    """Triton's JSON shape of the configuration, the SLO as a parameter."""
    out = to_triton_json(config)
    if config.batching.slo_ms is not None:
        out["parameters"] = {"slo_ms": {"string_value": str(config.batching.slo_ms)}}
    return out


def repository_index_json(entries: list[RepositoryEntry]) -> list[dict[str, Any]]:
    return [{"name": e.name, "version": e.version, "state": e.state, **({"reason": e.reason} if e.reason else {})} for e in entries]


def statistics_json(stats: list[ModelStatistics]) -> dict[str, Any]:
    return {"model_stats": [s.stats.to_json(s.name, s.version) for s in stats]}
