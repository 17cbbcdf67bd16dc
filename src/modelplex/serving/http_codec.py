"""KServe v2 REST bodies <-> InferRequest/InferResponse: JSON and the binary tensor extension."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import orjson

from modelplex.core.errors import InvalidArgumentError, PayloadTooLargeError
from modelplex.core.model import ModelConfig
from modelplex.core.tensors import DataType, deserialize_bytes_tensor, serialize_bytes_tensor
from modelplex.repository.encoding import to_triton_json
from modelplex.serving.messages import ModelMetadata, ModelStatistics, RepositoryEntry, ServerMetadata, TensorMetadata
from modelplex.serving.types import InferInput, InferRequest, InferResponse, RequestedOutput



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
        raise InvalidArgumentError(f"unsupported Content-Encoding {encoding!r} (use gzip or deflate)")
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit_bytes + 1)
    except zlib.error as exc:
        raise InvalidArgumentError(f"request body is not valid {encoding} data: {exc}") from None
    if len(out) > limit_bytes or d.unconsumed_tail:
        raise PayloadTooLargeError(f"decompressed request body is larger than the limit of {limit_bytes} bytes")
    if not d.eof:
        raise InvalidArgumentError(f"request body is truncated {encoding} data")
    return out


def _shape(raw: Any, name: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw):
        raise InvalidArgumentError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    return tuple(raw)


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _json_array(data: Any, dtype: DataType, shape: tuple[int, ...], name: str) -> np.ndarray:
    count = _count(shape)
    if dtype is DataType.BYTES:
        flat = np.asarray(data, dtype=object).reshape(-1)
        items = [s.encode("utf-8") if isinstance(s, str) else s for s in flat]
        if any(not isinstance(s, bytes) for s in items):
            raise InvalidArgumentError(f"input {name!r}: BYTES data must be strings")
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
    else:
        try:
            arr = np.asarray(data, dtype=dtype.numpy).reshape(-1)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgumentError(f"input {name!r}: data is not a valid {dtype.value} array ({exc})") from None
    if arr.size != count:
        raise InvalidArgumentError(f"input {name!r}: shape {list(shape)} needs {count} elements, data has {arr.size}")
    return arr.reshape(shape)


def _binary_array(chunk: memoryview, dtype: DataType, shape: tuple[int, ...], name: str) -> np.ndarray:
    count = _count(shape)
    if dtype is DataType.BYTES:
        return deserialize_bytes_tensor(chunk, count).reshape(shape)
    need = count * dtype.itemsize
    if len(chunk) != need:
        raise InvalidArgumentError(
            f"input {name!r}: binary_data_size is {len(chunk)} bytes, shape {list(shape)} of {dtype.value} needs {need}"
        )
    return np.frombuffer(chunk, dtype=dtype.numpy).reshape(shape)


def decode_request(model: str, version: str | None, body: bytes, header_length: str | None) -> InferRequest:
    """Parse an infer body; `header_length` is the Inference-Header-Content-Length header."""
    if header_length is not None:
        try:
            json_len = int(header_length)
        except ValueError:
            raise InvalidArgumentError(f"Inference-Header-Content-Length {header_length!r} is not an integer") from None
        if json_len < 0 or json_len > len(body):
            raise InvalidArgumentError(
                f"Inference-Header-Content-Length is {json_len} but the body has only {len(body)} bytes"
            )
    else:
        json_len = len(body)
    try:
        doc = orjson.loads(body[:json_len])
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError("request body must be a JSON object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidArgumentError("request needs a non-empty 'inputs' list")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidArgumentError("'parameters' must be an object")
    inputs = _decode_inputs(raw_inputs, memoryview(body)[json_len:])
    outputs = _decode_outputs(doc.get("outputs"))
    req_id = doc.get("id")
    return InferRequest(model, version, inputs, outputs, None if req_id is None else str(req_id), params)


def _decode_inputs(raw_inputs: list[Any], binary: memoryview) -> list[InferInput]:
    """The request's inputs: JSON `data`, or the binary extension's bytes after the JSON header."""
    pos = 0
    inputs: list[InferInput] = []
    for raw in raw_inputs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidArgumentError("each input needs a 'name'")
        name = raw["name"]
        if not isinstance(raw.get("datatype"), str):
            raise InvalidArgumentError(f"input {name!r} needs a 'datatype'")
        dtype = DataType.parse(raw["datatype"])
        shape = _shape(raw.get("shape"), name)
        iparams = raw.get("parameters") or {}
        size = iparams.get("binary_data_size") if isinstance(iparams, dict) else None
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidArgumentError(f"input {name!r}: binary_data_size must be a non-negative integer")
            if pos + size > len(binary):
                raise InvalidArgumentError(
                    f"input {name!r}: binary data is truncated ({len(binary) - pos} bytes left, binary_data_size {size})"
                )
            array = _binary_array(binary[pos : pos + size], dtype, shape, name)
            pos += size
        elif "data" in raw:
            array = _json_array(raw["data"], dtype, shape, name)
        else:
            raise InvalidArgumentError(f"input {name!r} has neither 'data' nor binary_data_size")
        inputs.append(InferInput(name, dtype, shape, array))
    if pos != len(binary):
        raise InvalidArgumentError(f"request has {len(binary) - pos} bytes of binary data that no input claims")
    return inputs


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
        bin_flag = oparams.get("binary_data") if isinstance(oparams, dict) else None
        outputs.append(RequestedOutput(o["name"], None if bin_flag is None else bool(bin_flag)))
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
        if binary:
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
