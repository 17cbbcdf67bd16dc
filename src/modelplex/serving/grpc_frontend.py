"""KServe v2 gRPC frontend (inference.GRPCInferenceService) over the same data plane, served by
the gRPC edge (serving.grpc_edge)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc

from modelplex.core.errors import InvalidArgumentError, ModelplexError
from modelplex.serving.auth import GrpcGate, TlsFiles
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.errors_map import GRPC_STATUS
from modelplex.serving.grpc_codec import (
    encode_infer,
    model_config_pb,
    model_metadata_pb,
    repository_index_pb,
    server_metadata_pb,
    statistics_pb,
)
from modelplex.serving.grpc_decode import decode_infer
from modelplex.serving.grpc_edge import CallAborted, CallContext, EdgeLimits, GrpcEdge, GrpcServer, Method, Unary
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb
from modelplex.serving.grpc_gen import grpc_service_pb2_grpc as pb_grpc

T = TypeVar("T")

log = logging.getLogger(__name__)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def _call(self, context: Any, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except ModelplexError as exc:
            await context.abort(GRPC_STATUS[exc.code], exc.message)
        except (asyncio.CancelledError, CallAborted):
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
        return server_metadata_pb(self.plane.server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            return model_metadata_pb(self.plane.model_metadata(request.name, request.version or None))

        return await self._call(context, go)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            return model_config_pb(self.plane.model_config(request.name, request.version or None))

        return await self._call(context, go)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            return statistics_pb(self.plane.statistics(request.name or None, request.version or None))

        return await self._call(context, go)

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        return repository_index_pb(self.plane.repository_index())

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

    async def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            self.plane.shm.register(request.name, request.key, request.offset, request.byte_size)
            return pb.SystemSharedMemoryRegisterResponse()

        return await self._call(context, go)

    async def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:
        async def go() -> Any:
            out = pb.SystemSharedMemoryStatusResponse()
            for r in self.plane.shm.status(request.name or None):
                out.regions[r["name"]].CopyFrom(pb.SystemSharedMemoryStatusResponse.RegionStatus(**r))
            return out

        return await self._call(context, go)

    async def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
        self.plane.shm.unregister(request.name or None)
        return pb.SystemSharedMemoryUnregisterResponse()

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
                if isinstance(msg, Undecodable):
                    raise InvalidArgumentError(f"request is not a valid ModelInferRequest: {msg.error}")
                resp = pb.ModelStreamInferResponse(infer_response=encode_infer(await self.plane.infer(decode_infer(msg))))
            except ModelplexError as exc:
                resp = _stream_error(msg, exc.message)
            except Exception as exc:  # answer every request, whatever happens
                resp = _stream_error(msg, f"internal error: {exc}")
            await results.put(resp)

        async def feed() -> None:
            nonlocal pending
            try:
                async for msg in request_iterator:
                    pending += 1
                    asyncio.ensure_future(one(msg))
            finally:  # whatever ends the stream, the answers of what came still go out
                results.put_nowait(None)

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


def _stream_error(msg: Any, message: str) -> Any:
    """A stream's error answer, carrying the request's model and id so that a client with many
    requests on the stream can tell which one failed."""
    if isinstance(msg, Undecodable):
        return pb.ModelStreamInferResponse(error_message=message)
    return pb.ModelStreamInferResponse(
        error_message=message, infer_response=pb.ModelInferResponse(model_name=msg.model_name, model_version=msg.model_version, id=msg.id))


@dataclass(frozen=True)
class Undecodable:
    """Request bytes that are no message of the method's type: the client's error, not ours
    (grpc itself would answer UNKNOWN, or end a stream without a word)."""

    error: str  # what the protobuf parser said


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def go(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:  # DecodeError, whatever the protobuf backend calls it
            return Undecodable(str(exc))

    return go


class _Registration:
    """Takes the generated stub's registration (the service's method handlers), from which the
    edge's method table is made (service_methods)."""

    def __init__(self) -> None:
        self.service = ""  # e.g. "inference.GRPCInferenceService"
        self.handlers: dict[str, Any] = {}  # method name -> its handler

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        pass  # the same handlers arrive through add_registered_method_handlers

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.service, self.handlers = service, dict(handlers)


def _checked(inner: Unary, method: str) -> Unary:
    """A unary handler whose unparseable requests are answered INVALID_ARGUMENT (ModelStreamInfer
    answers each one with an error_message: it sees an Undecodable)."""

    async def unary(request: object, context: CallContext) -> object:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {method} message: {request.error}")
        return await inner(request, context)

    return unary


async def _unimplemented(request: object, context: CallContext) -> object:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def service_methods(servicer: InferenceService) -> dict[str, Method]:
    """The service's methods by full name, from the generated stub's registration; those the
    servicer leaves to the generated base class answer UNIMPLEMENTED (after the token check)."""
    taken = _Registration()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, taken)  # type: ignore[no-untyped-call]
    methods = {}
    for name, h in taken.handlers.items():
        full = f"/{taken.service}/{name}"
        decode, encode = _lenient(h.request_deserializer), h.response_serializer
        if getattr(InferenceService, name) is getattr(pb_grpc.GRPCInferenceServiceServicer, name):
            methods[full] = Method(full, decode, encode, unary=_unimplemented)
        elif h.unary_unary is not None:
            methods[full] = Method(full, decode, encode, unary=_checked(h.unary_unary, full))
        else:
            methods[full] = Method(full, decode, encode, stream=h.stream_stream)
    return methods


async def start_grpc(
    plane: DataPlane, host: str, port: int, max_message_bytes: int,
    gate: GrpcGate | None = None, tls: TlsFiles | None = None,
) -> GrpcServer:
    """The gRPC edge (serving.grpc_edge), bounded: concurrent calls and streams, the preface and
    TLS handshake time, idle connections, and keepalive pings that find clients that vanished.
    A call whose client cancels (or whose deadline passes) is cancelled here too: its request
    leaves the queue. `gate` checks every call's token first; `tls` makes it TLS."""
    edge = GrpcEdge(service_methods(InferenceService(plane)), EdgeLimits(max_message_bytes), gate)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            edge.connection, host, port, ssl=tls.grpc_context() if tls is not None else None,
            ssl_handshake_timeout=10.0 if tls is not None else None, backlog=1024)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot bind gRPC to {host}:{port} ({exc.strerror or exc})") from None
    return GrpcServer(edge, server)
