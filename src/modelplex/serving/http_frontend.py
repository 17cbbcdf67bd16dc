"""KServe v2 REST frontend: parse, call the data plane, encode. No policy lives here."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Awaitable, Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplex.core.errors import ModelplexError, PayloadTooLargeError
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.errors_map import HTTP_STATUS
from modelplex.serving.http_codec import HEADER_LENGTH, decode_request, decompress, encode_response

DEFAULT_MAX_BODY_BYTES = 64 * 2**20

Handler = Callable[[Request], Awaitable[Response]]


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _guard(fn: Handler) -> Handler:
    """Map modelplex errors to their status; anything unexpected to 500, logged, never a crash."""

    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except ModelplexError as exc:
            return _error(HTTP_STATUS[exc.code], exc.message)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            return _error(500, f"internal error: {exc}")

    return wrapped


async def _read_body(request: Request, limit_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise PayloadTooLargeError(f"request body is over the limit of {limit_bytes} bytes")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = request.headers.get("content-encoding")
    return decompress(body, encoding, limit_bytes) if encoding else body


def build_app(plane: DataPlane, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    def ok_if(flag: bool) -> Response:
        return Response(status_code=200 if flag else 400)

    async def live(request: Request) -> Response:
        return Response(status_code=200)

    async def ready(request: Request) -> Response:
        return ok_if(all(m.ready for m in plane.models.values()))

    async def server_metadata(request: Request) -> Response:
        return _json(plane.server_metadata())

    def _mv(request: Request) -> tuple[str, str | None]:
        p = request.path_params
        return p["model"], p.get("version")

    async def model_ready(request: Request) -> Response:
        return ok_if(plane.model_ready(*_mv(request)))

    async def model_metadata(request: Request) -> Response:
        return _json(plane.model_metadata(*_mv(request)))

    async def model_config(request: Request) -> Response:
        return _json(plane.model_config(*_mv(request)))

    async def infer(request: Request) -> Response:
        model, version = _mv(request)
        plane.get(model, version)  # unknown model: 404 before reading the body
        body = await _read_body(request, max_body_bytes)
        req = decode_request(model, version, body, request.headers.get(HEADER_LENGTH))
        resp = await plane.infer(req)
        payload, header_len = encode_response(req, resp)
        if header_len is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_len)},
        )

    async def stats(request: Request) -> Response:
        p = request.path_params
        return _json(plane.statistics(p.get("model"), p.get("version")))

    async def repo_index(request: Request) -> Response:
        return _json(plane.repository_index())

    async def repo_load(request: Request) -> Response:
        await plane.load(request.path_params["model"])
        return _json({})

    async def repo_unload(request: Request) -> Response:
        await plane.unload(request.path_params["model"])
        return _json({})

    async def status(request: Request) -> Response:
        return _json(plane.status())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    mv = "/v2/models/{model}"
    mvv = "/v2/models/{model}/versions/{version}"
    routes = [
        Route("/v2/health/live", _guard(live)),
        Route("/v2/health/ready", _guard(ready)),
        Route("/v2", _guard(server_metadata)),
        Route("/v2/models/stats", _guard(stats)),
        Route(mv + "/stats", _guard(stats)),
        Route(mvv + "/stats", _guard(stats)),
        Route(mv + "/ready", _guard(model_ready)),
        Route(mvv + "/ready", _guard(model_ready)),
        Route(mv + "/config", _guard(model_config)),
        Route(mvv + "/config", _guard(model_config)),
        Route(mv + "/infer", _guard(infer), methods=["POST"]),
        Route(mvv + "/infer", _guard(infer), methods=["POST"]),
        Route(mv, _guard(model_metadata)),
        Route(mvv, _guard(model_metadata)),
        Route("/v2/repository/index", _guard(repo_index), methods=["POST", "GET"]),
        Route("/v2/repository/models/{model}/load", _guard(repo_load), methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", _guard(repo_unload), methods=["POST"]),
        Route("/v2/status", _guard(status)),
        Route("/metrics", metrics),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
