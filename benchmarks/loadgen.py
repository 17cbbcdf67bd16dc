"""KServe v2 load generators: closed loop (N in flight) and open loop (a seeded, pre-generated trace).

Clients are as cheap as possible so that, on a small machine, the measurement is of the server:
HTTP requests are pre-encoded bytes on keep-alive connections parsed by httptools; gRPC calls
send pre-serialized ModelInferRequest bytes through a generic grpcio stub (`grpc`), or through
hand-written HTTP/2 frames (`grpc-lean`, modelplex.bench.grpc_client). The keep-alive connection and
the pool are modelplex.bench.http (shared with `modelplex bench`).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from modelplex.bench.http import HttpConn  # noqa: E402

Call = Callable[[], Awaitable[bool]]  # one request; True when answered 200/OK


@dataclass
class Result:
    """Latencies of one run (warm-up excluded)."""

    latencies_s: list[float] = field(default_factory=list)  # answered requests
    errors: int = 0  # non-200 answers or failures
    duration_s: float = 0.0  # measured window

    def summary(self, slo_ms: float | None = None) -> dict[str, float]:
        lat = np.array(self.latencies_s) * 1e3 if self.latencies_s else np.array([0.0])
        out = {
            "requests": len(self.latencies_s),
            "errors": self.errors,
            "rps": len(self.latencies_s) / self.duration_s if self.duration_s else 0.0,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
        }
        if slo_ms is not None:
            good = int((lat <= slo_ms).sum()) if self.latencies_s else 0
            out["goodput_rps"] = good / self.duration_s if self.duration_s else 0.0
            total = len(self.latencies_s) + self.errors
            out["slo_attainment"] = good / total if total else 0.0
        return out


# ---- HTTP ------------------------------------------------------------------------------------
def infer_body_json(name: str, array: np.ndarray, datatype: str = "FP32", binary_output: bool = True) -> bytes:
    doc = {
        "inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.reshape(-1).tolist()}],
        "parameters": {"binary_data_output": binary_output},
    }
    return orjson.dumps(doc)


def infer_body_binary(name: str, array: np.ndarray, datatype: str = "FP32") -> tuple[bytes, int]:
    raw = np.ascontiguousarray(array).tobytes()
    head = orjson.dumps(
        {
            "inputs": [{"name": name, "shape": list(array.shape), "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }
    )
    return head + raw, len(head)


def http_request(host: str, port: int, path: str, body: bytes, header_len: int | None = None) -> bytes:
    kind = "application/json" if header_len is None else "application/octet-stream"
    headers = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {kind}"]
    if header_len is not None:
        headers.append(f"Inference-Header-Content-Length: {header_len}")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def http_callers(host: str, port: int, raw: bytes, n: int) -> list[Call]:
    """n keep-alive connections sending `raw`; each call is True when answered 200."""
    calls: list[Call] = []
    for sc in await status_callers(host, port, raw, n):

        async def call(sc: StatusCall = sc) -> bool:
            return await sc.status() == 200

        calls.append(call)
    return calls


# ---- gRPC ------------------------------------------------------------------------------------
def _infer_request(model: str, name: str, array: np.ndarray, datatype: str, request_id: str = "") -> bytes:
    """A serialized ModelInferRequest of one input, its tensor in raw_input_contents."""
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    req.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
    req.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
    return bytes(req.SerializeToString())


async def grpc_callers(target: str, model: str, name: str, array: np.ndarray, datatype: str, n: int) -> list[Call]:
    import grpc

    payload = _infer_request(model, name, array, datatype)
    calls: list[Call] = []
    # a few channels (HTTP/2 connections) shared by the callers, like a real client pool
    channels = [grpc.aio.insecure_channel(target) for _ in range(min(n, 4))]
    for i in range(n):
        method = channels[i % len(channels)].unary_unary(
            "/inference.GRPCInferenceService/ModelInfer", request_serializer=None, response_deserializer=None
        )

        async def call(method: object = method) -> bool:
            try:
                await method(payload)  # type: ignore[operator]
                return True
            except grpc.aio.AioRpcError:
                return False

        calls.append(call)
    return calls


async def grpc_lean_callers(target: str, model: str, name: str, array: np.ndarray, datatype: str, n: int) -> list[Call]:
    """Unary ModelInfer calls through modelplex.bench.grpc_client (frames written by hand, as
    cheap as the HTTP client): a few HTTP/2 connections shared by the callers, as grpc_callers."""
    from modelplex.bench.grpc_client import GrpcConn

    host, port = target.rsplit(":", 1)
    payload = _infer_request(model, name, array, datatype)
    conns = [await GrpcConn.open(host, int(port), "/inference.GRPCInferenceService/ModelInfer") for _ in range(min(n, 4))]
    calls: list[Call] = []
    for i in range(n):
        async def call(conn: GrpcConn = conns[i % len(conns)]) -> bool:
            return await conn.call(payload) == 0

        calls.append(call)
    return calls


async def grpc_stream_callers(target: str, model: str, name: str, array: np.ndarray, datatype: str, n: int) -> list[Call]:
    """Callers over ModelStreamInfer (Triton's bidirectional stream, what `tritonclient`'s
    `start_stream` uses): one stream per channel, each caller's request tagged with its id and
    its answer matched back by that id (answers come in completion order)."""
    import grpc
    from tritonclient.grpc import service_pb2

    streams, readers = [], []
    waiting: dict[str, asyncio.Future[bool]] = {}
    for _ in range(min(n, 4)):
        channel = grpc.aio.insecure_channel(target)
        stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer", request_serializer=None,
                                       response_deserializer=service_pb2.ModelStreamInferResponse.FromString)()
        streams.append(stream)
        readers.append(asyncio.ensure_future(_read_stream(stream, waiting)))
    locks = [asyncio.Lock() for _ in streams]
    calls: list[Call] = []
    for i in range(n):
        async def call(stream: object = streams[i % len(streams)], lock: asyncio.Lock = locks[i % len(streams)],
                       reader: asyncio.Future[None] = readers[i % len(streams)],
                       payload: bytes = _infer_request(model, name, array, datatype, str(i)),
                       key: str = str(i)) -> bool:
            if reader.done():
                return False  # the stream ended: nobody would answer
            answer = waiting[key] = asyncio.get_running_loop().create_future()
            try:
                async with lock:  # grpc.aio takes one write at a time on a stream
                    await stream.write(payload)  # type: ignore[attr-defined]
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                waiting.pop(key, None)
                return False
            return await answer

        calls.append(call)
    return calls


async def _read_stream(stream: object, waiting: "dict[str, asyncio.Future[bool]]") -> None:
    """Resolve each caller's answer as it arrives; a broken stream fails every caller waiting."""
    import grpc

    try:
        async for resp in stream:  # type: ignore[attr-defined]
            answer = waiting.pop(resp.infer_response.id, None)
            if answer is not None and not answer.done():
                answer.set_result(not resp.error_message)
    except grpc.aio.AioRpcError:
        pass
    for answer in waiting.values():
        if not answer.done():
            answer.set_result(False)


# ---- loops -----------------------------------------------------------------------------------
async def closed_loop(calls: list[Call], duration_s: float, warmup_s: float = 1.0) -> Result:
    """Each caller keeps one request in flight until the run ends."""
    result = Result()
    start = time.perf_counter()
    t_measure = start + warmup_s
    t_end = t_measure + duration_s

    async def worker(call: Call) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= t_end:
                return
            ok = await call()
            t1 = time.perf_counter()
            if t0 >= t_measure:
                if ok:
                    result.latencies_s.append(t1 - t0)
                else:
                    result.errors += 1

    await asyncio.gather(*(worker(c) for c in calls))
    result.duration_s = duration_s
    return result


# ---- mixed open loop (several models, one pre-generated trace) --------------------------------
@dataclass
class MixResult:
    """Per-request outcome of a mixed run, in trace order."""

    model_index: list[int] = field(default_factory=list)  # which model each request was for
    sched_s: list[float] = field(default_factory=list)  # scheduled arrival, from the run's start
    latency_s: list[float] = field(default_factory=list)  # from scheduled arrival to answer
    status: list[int] = field(default_factory=list)  # HTTP status, or 0 when no answer came


async def open_loop_trace(
    calls_by_model: list[list["StatusCall"]], times_s: np.ndarray, model_idx: np.ndarray, timeout_s: float = 60.0
) -> MixResult:
    """Replay a trace (sorted arrival times and model indices): each request waits for a free
    connection of its model; latency counts from its scheduled time. Bounded by the trace."""
    free: list[asyncio.Queue[StatusCall]] = []
    for calls in calls_by_model:
        q: asyncio.Queue[StatusCall] = asyncio.Queue()
        for c in calls:
            q.put_nowait(c)
        free.append(q)
    n = len(times_s)
    out = MixResult([0] * n, [0.0] * n, [0.0] * n, [0] * n)
    start = time.perf_counter()

    async def one(i: int, t_sched: float, m: int) -> None:
        call = await free[m].get()
        try:
            status = await call.status()
        except (ConnectionError, OSError):
            status = 0
        free[m].put_nowait(call)
        out.model_index[i] = m
        out.sched_s[i] = t_sched
        out.latency_s[i] = time.perf_counter() - start - t_sched
        out.status[i] = status

    tasks = []
    for i in range(n):
        t = float(times_s[i])
        delay = start + t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, t, int(model_idx[i]))))
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for t in pending:  # never answered: stays status 0 ("lost"), reported by the caller
        t.cancel()
    return out


class StatusCall:
    """A keep-alive connection that sends one pre-encoded request and returns the HTTP status;
    it reconnects when the server has closed the connection while it was idle."""

    def __init__(self, conn: HttpConn, raw: bytes, host: str, port: int) -> None:
        self.conn, self.raw, self.host, self.port = conn, raw, host, port

    async def status(self) -> int:
        if self.conn.closed:
            _, self.conn = await asyncio.get_running_loop().create_connection(HttpConn, self.host, self.port)
        return await self.conn.send(self.raw)


async def status_callers(host: str, port: int, raw: bytes, n: int) -> list[StatusCall]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(n):
        _, conn = await loop.create_connection(HttpConn, host, port)
        out.append(StatusCall(conn, raw, host, port))
    return out
