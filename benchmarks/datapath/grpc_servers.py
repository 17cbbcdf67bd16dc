"""gRPC servers side by side on one fixed-answer ModelInfer handler (no model, no data plane):
the server's own CPU per call, which is what chose the gRPC edge (serving/grpc_edge.py).

    .venv/bin/python benchmarks/datapath/grpc_servers.py [--seconds 4] [--concurrency 1,32]

Servers: grpc.aio (grpcio's asyncio server), modelplex's gRPC edge, and, when installed in the
same environment, grpclib and a minimal server on the `h2` library (`pip install grpclib h2`;
neither is a modelplex dependency). Each runs on uvloop in its own process; the client is
grpcio's asyncio client with one channel, in this process. CPU µs per call = the server
process's CPU seconds over the window / calls answered. One run per server, in a fixed order.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import struct
import sys
import time
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]

import numpy as np  # noqa: E402

from modelplex.bench.target import free_port  # noqa: E402
from modelplex.serving.grpc_gen import grpc_service_pb2 as pb  # noqa: E402
from procs import cpu_seconds  # noqa: E402

METHOD = "/inference.GRPCInferenceService/ModelInfer"
_OUT = np.arange(10, dtype=np.float32).tobytes()


def answer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    out = pb.ModelInferResponse(model_name=request.model_name, id=request.id, raw_output_contents=[_OUT])
    out.outputs.add(name="y", datatype="FP32", shape=[1, 10])
    return out


async def serve_aio(port: int) -> None:
    import grpc

    async def infer(request: pb.ModelInferRequest, context: object) -> pb.ModelInferResponse:
        return answer(request)

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(infer, pb.ModelInferRequest.FromString, pb.ModelInferResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {"ModelInfer": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def serve_edge(port: int) -> None:
    from modelplex.serving.grpc_edge import CallContext, EdgeLimits, GrpcEdge, Method

    async def infer(request: object, context: CallContext) -> object:
        return answer(request)  # type: ignore[arg-type]

    edge = GrpcEdge({METHOD: Method(METHOD, pb.ModelInferRequest.FromString, pb.ModelInferResponse.SerializeToString, unary=infer)},
                    EdgeLimits(64 << 20), gate=None)
    server = await asyncio.get_running_loop().create_server(edge.connection, "127.0.0.1", port)
    await server.serve_forever()


async def serve_grpclib(port: int) -> None:
    from grpclib.const import Cardinality, Handler
    from grpclib.server import Server

    class Service:
        async def infer(self, stream: object) -> None:
            await stream.send_message(answer(await stream.recv_message()))  # type: ignore[attr-defined]

        def __mapping__(self) -> dict[str, object]:
            return {METHOD: Handler(self.infer, Cardinality.UNARY_UNARY, pb.ModelInferRequest, pb.ModelInferResponse)}

    server = Server([Service()])
    await server.start("127.0.0.1", port)
    await server.wait_closed()


async def serve_h2(port: int) -> None:
    import h2.config
    import h2.connection
    import h2.events

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            self.bodies: dict[int, bytearray] = {}
            self.conn.initiate_connection()
            self.conn.increment_flow_control_window(2**30)
            transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    self.bodies[event.stream_id] = bytearray()
                elif isinstance(event, h2.events.DataReceived):
                    self.bodies[event.stream_id] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.respond(event.stream_id, bytes(self.bodies.pop(event.stream_id)))
            self.transport.write(self.conn.data_to_send())  # type: ignore[attr-defined]

        def respond(self, stream: int, body: bytes) -> None:
            out = answer(pb.ModelInferRequest.FromString(body[5:])).SerializeToString()
            self.conn.send_headers(stream, [(b":status", b"200"), (b"content-type", b"application/grpc")])
            self.conn.send_data(stream, struct.pack(">BI", 0, len(out)) + out)
            self.conn.send_headers(stream, [(b"grpc-status", b"0")], end_stream=True)

    server = await asyncio.get_running_loop().create_server(Protocol, "127.0.0.1", port)
    await server.serve_forever()


SERVERS = {"grpc.aio": serve_aio, "modelplex edge": serve_edge, "grpclib": serve_grpclib, "h2 (minimal)": serve_h2}
OPTIONAL = {"grpclib": "grpclib", "h2 (minimal)": "h2"}


def _run_server(name: str, port: int) -> None:
    import uvloop

    uvloop.install()
    asyncio.run(SERVERS[name](port))


def _cpu_s(pid: int) -> float:
    return cpu_seconds({"server": [pid]})["server"]


async def _load(port: int, pid: int, conc: int, seconds: float) -> tuple[float, float]:
    """(calls per second, server CPU µs per call) at `conc` calls in flight."""
    import grpc

    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[np.zeros(3072, np.float32).tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=[1, 3, 32, 32])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD, request_serializer=pb.ModelInferRequest.SerializeToString,
                                   response_deserializer=pb.ModelInferResponse.FromString)
        for _ in range(100):
            await call(request, timeout=10)
        done, stop = 0, time.monotonic() + seconds

        async def caller() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await call(request, timeout=10)
                done += 1

        cpu0, t0 = _cpu_s(pid), time.monotonic()
        await asyncio.gather(*(caller() for _ in range(conc)))
        return done / (time.monotonic() - t0), 1e6 * (_cpu_s(pid) - cpu0) / done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--concurrency", default="1,32", type=lambda s: [int(c) for c in s.split(",")])
    args = ap.parse_args()
    print("| server | in flight | calls/s | server CPU µs per call |\n|---|---|---|---|")
    for name in SERVERS:
        if name in OPTIONAL and not _importable(OPTIONAL[name]):
            print(f"| {name} | | not installed (pip install {OPTIONAL[name]}) | |")
            continue
        port = free_port()
        proc = mp.get_context("spawn").Process(target=_run_server, args=(name, port), daemon=True)
        proc.start()
        try:
            wait_for_port(port)
            for conc in args.concurrency:
                rate, us = asyncio.run(_load(port, proc.pid or 0, conc, args.seconds))
                print(f"| {name} | {conc} | {rate:.0f} | {us:.0f} |", flush=True)
        finally:
            proc.terminate()
            proc.join(10)
    return 0


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


if __name__ == "__main__":
    sys.exit(main())
