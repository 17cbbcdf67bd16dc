"""KServe v2 gRPC frontend (inference.GRPCInferenceService) over the same data plane."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format

from modelplex.core.errors import InvalidArgumentError, ModelplexError
from modelplex.core.tensors import DataType, deserialize_bytes_tensor, serialize_bytes_tensor
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.errors_map import GRPC_STATUS
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb
from modelplex.serving.grpc_gen import grpc_service_pb2_grpc as pb_grpc
from modelplex.serving.grpc_gen import model_config_pb2
from modelplex.serving.types import InferInput, InferRequest, InferResponse, RequestedOutput

T = TypeVar("T")

# Which InferTensorContents field carries each datatype when raw contents are not used.
_CONTENTS_FIELD = {
    DataType.BOOL: "bool_contents",
    DataType.INT8: "int_contents",
    DataType.INT16: "int_contents",
    DataType.INT32: "int_contents",
    DataType.INT64: "int64_contents",
    DataType.UINT8: "uint_contents",
    DataType.UINT16: "uint_contents",
    DataType.UINT32: "uint_contents",
    DataType.UINT64: "uint64_contents",
    DataType.FP32: "fp32_contents",
    DataType.FP64: "fp64_contents",
    DataType.BYTES: "bytes_contents",
}

log = logging.getLogger(__name__)


def _param_value(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def decode_infer(msg: Any) -> InferRequest:
    """ModelInferRequest -> InferRequest (raw contents or typed contents)."""
    params = {k: _param_value(v) for k, v in msg.parameters.items()}
    raw = msg.raw_input_contents
    if raw and len(raw) != len(msg.inputs):
        raise InvalidArgumentError(f"request has {len(msg.inputs)} inputs but {len(raw)} raw_input_contents")
    inputs: list[InferInput] = []
    for i, t in enumerate(msg.inputs):
        dtype = DataType.parse(t.datatype)
        shape = tuple(int(d) for d in t.shape)
        if any(d < 0 for d in shape):
            raise InvalidArgumentError(f"input {t.name!r}: shape has a negative dimension")
        count = int(np.prod(shape)) if shape else 1
        if raw:
            buf = raw[i]
            if dtype is DataType.BYTES:
                array = deserialize_bytes_tensor(buf, count)
            else:
                need = count * dtype.itemsize
                if len(buf) != need:
                    raise InvalidArgumentError(
                        f"input {t.name!r}: raw content is {len(buf)} bytes, shape {list(shape)} of {dtype.value} needs {need}"
                    )
                array = np.frombuffer(buf, dtype=dtype.numpy)
        else:
            field = _CONTENTS_FIELD.get(dtype)
            if field is None:
                raise InvalidArgumentError(f"input {t.name!r}: {dtype.value} must be sent as raw_input_contents")
            values = getattr(t.contents, field)
            if dtype is DataType.BYTES:
                array = np.empty(len(values), dtype=object)
                array[:] = list(values)
            else:
                array = np.asarray(values, dtype=dtype.numpy)
            if array.size != count:
                raise InvalidArgumentError(f"input {t.name!r}: shape {list(shape)} needs {count} elements, got {array.size}")
        inputs.append(InferInput(t.name, dtype, shape, array.reshape(shape)))
    outputs = [RequestedOutput(o.name) for o in msg.outputs] or None
    return InferRequest(msg.model_name, msg.model_version or None, inputs, outputs, msg.id or None, params)


def encode_infer(resp: InferResponse) -> Any:
    out = pb.ModelInferResponse(model_name=resp.model, model_version=resp.version, id=resp.id or "")
    for o in resp.outputs:
        t = out.outputs.add(name=o.name, datatype=o.datatype.value, shape=list(o.shape))
        del t  # the tensor's data travels in raw_output_contents, in the same order
        if o.datatype is DataType.BYTES:
            out.raw_output_contents.append(serialize_bytes_tensor(o.array))
        else:
            out.raw_output_contents.append(np.ascontiguousarray(o.array).tobytes())
    for k, v in resp.parameters.items():
        param = out.parameters[k]
        if isinstance(v, bool):
            param.bool_param = v
        elif isinstance(v, int):
            param.int64_param = v
        elif isinstance(v, float):
            param.double_param = v
        else:
            param.string_param = str(v)
    return out


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def _call(self, context: Any, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except ModelplexError as exc:
            await context.abort(GRPC_STATUS[exc.code], exc.message)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            log.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {exc}")
        raise AssertionError("unreachable")

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.plane.ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version or None))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return json_format.ParseDict(self.plane.server_metadata(), pb.ServerMetadataResponse())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            doc = self.plane.model_metadata(request.name, request.version or None)
            return json_format.ParseDict(doc, pb.ModelMetadataResponse())

        return await self._call(context, go)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            doc = self.plane.model_config(request.name, request.version or None)
            config = json_format.ParseDict(doc, model_config_pb2.ModelConfig(), ignore_unknown_fields=True)
            return pb.ModelConfigResponse(config=config)

        return await self._call(context, go)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            doc = self.plane.statistics(request.name or None, request.version or None)
            return json_format.ParseDict(doc, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

        return await self._call(context, go)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        resp = pb.RepositoryIndexResponse()
        for entry in self.plane.repository_index():
            resp.models.add(name=entry["name"], version=entry["version"], state=entry["state"], reason=entry.get("reason", ""))
        return resp

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            await self.plane.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return await self._call(context, go)

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            await self.plane.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return await self._call(context, go)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            req = decode_infer(request)
            task = req.parameters.get("task")
            if task is not None:  # model-less: the task travels as a request parameter
                return encode_infer(await self.plane.infer_task(str(task), req))
            return encode_infer(await self.plane.infer(req))

        return await self._call(context, go)

    async def ModelStreamInfer(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        """Each request is answered as it completes; errors travel in error_message."""
        results: asyncio.Queue[Any] = asyncio.Queue()
        pending = 0

        async def one(msg: Any) -> None:
            try:
                resp = pb.ModelStreamInferResponse(infer_response=encode_infer(await self.plane.infer(decode_infer(msg))))
            except ModelplexError as exc:
                resp = pb.ModelStreamInferResponse(error_message=exc.message)
            except Exception as exc:  # answer every request, whatever happens
                resp = pb.ModelStreamInferResponse(error_message=f"internal error: {exc}")
            await results.put(resp)

        async def feed() -> None:
            nonlocal pending
            async for msg in request_iterator:
                pending += 1
                asyncio.ensure_future(one(msg))
            await results.put(None)

        feeder = asyncio.ensure_future(feed())
        done_feeding = False
        try:
            while not done_feeding or pending:
                item = await results.get()
                if item is None:
                    done_feeding = True
                    continue
                pending -= 1
                yield item
        finally:
            feeder.cancel()


async def start_grpc(plane: DataPlane, host: str, port: int, max_message_bytes: int) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(plane), server)  # type: ignore[no-untyped-call]
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise InvalidArgumentError(f"cannot bind gRPC to {host}:{port} (port in use?)")
    await server.start()
    return server
