"""KServe v2 REST frontend: parse, call the data plane, encode. No policy lives here."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, MutableMapping, Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplex.core.errors import InvalidArgumentError, ModelplexError, PayloadTooLargeError
from modelplex.serving.http_protocol import CLIENT_KEY, WRITES_KEY, HeldWrites
from modelplex.serving.limits import ClientLink
from modelplex.core.plan import Plan
from modelplex.planning.admit import admit_problems
from modelplex.serving.dataplane import DataPlane
from modelplex.serving.decode_pool import DecodePool
from modelplex.serving.errors_map import HTTP_STATUS
from modelplex.serving.http_codec import (
    encode_response,
    model_config_json,
    model_metadata_json,
    repository_index_json,
    server_metadata_json,
    statistics_json,
)

if TYPE_CHECKING:
    from modelplex.serving.dashboard.feed import DashboardFeed

DEFAULT_MAX_BODY_BYTES = 64 * 2**20
_PLAN_PROBLEMS_SHOWN = 5  # a refused plan's answer names this many problems

Handler = Callable[[Request], Awaitable[Response]]

log = logging.getLogger(__name__)


class ControlStatus(Protocol):
    """The re-planning loop, as `GET /v2/plan` reports it."""

    def status(self) -> dict[str, Any]: ...


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
            log.exception("internal error")
            return _error(500, f"internal error: {exc}")

    return wrapped


ASGIScope = dict[str, Any]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_MODELS_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"
_TASKS_PREFIX = "/v2/tasks/"


class InferFastPath:
    """The infer route as a bare ASGI handler in front of the Starlette app.

    Measured: the middleware and routing layers cost more CPU per request than decoding a binary
    request does, and infer is the only route on the hot path; every other route, and anything
    this does not recognise, goes to the Starlette app unchanged.
    """

    def __init__(self, plane: DataPlane, app: Starlette, max_body_bytes: int, decoder: DecodePool) -> None:
        self.plane = plane
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.decoder = decoder  # decodes large bodies off the event loop

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith(_MODELS_PREFIX) and path.endswith(_INFER_SUFFIX):
            parts = path[len(_MODELS_PREFIX) : -len(_INFER_SUFFIX)].split("/")
            if len(parts) == 1 and parts[0]:
                return await self._infer(parts[0], None, scope, receive, send)
            if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
                return await self._infer(parts[0], parts[2], scope, receive, send)
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith(_TASKS_PREFIX) and path.endswith(_INFER_SUFFIX):
            task = path[len(_TASKS_PREFIX) : -len(_INFER_SUFFIX)]
            if task and "/" not in task:
                return await self._infer(task, None, scope, receive, send, task=True)
        await self.app(scope, receive, send)

    async def _infer(
        self, model: str, version: str | None, scope: ASGIScope, receive: ASGIReceive, send: ASGISend, task: bool = False
    ) -> None:
        headers: list[tuple[bytes, bytes]] = []
        client = scope.get(CLIENT_KEY)
        try:
            if not task and not self.plane.knows(model):
                self.plane.get(model, version)  # unknown model: 404 before reading the body
            req_headers = {k: v for k, v in scope["headers"]}
            body = await self._body(req_headers, receive)
            hlen = req_headers.get(b"inference-header-content-length")
            encoding = req_headers.get(b"content-encoding")
            json_part = body[: int(hlen)] if hlen is not None and hlen.isdigit() else body
            if not task and encoding is None and len(json_part) <= self.decoder.inline_json_bytes:
                self.plane.refuse_early(model, json_part)  # a small request: refused before decoding if busy
            req = await self.decoder.decode(
                model, version, body, hlen.decode("latin-1") if hlen is not None else None,
                encoding.decode("latin-1") if encoding is not None else None, self.max_body_bytes,
            )
            resp = await (self.plane.infer_task(model, req) if task else self.plane.infer(req, client))
            payload, header_len = encode_response(req, resp)
            status = 200
            if header_len is None:
                headers.append((b"content-type", b"application/json"))
            else:
                headers.append((b"content-type", b"application/octet-stream"))
                headers.append((b"inference-header-content-length", str(header_len).encode()))
        except ModelplexError as exc:
            status, payload = HTTP_STATUS[exc.code], orjson.dumps({"error": exc.message})
            headers = [(b"content-type", b"application/json")]
        except asyncio.CancelledError:
            if isinstance(client, ClientLink) and client.left:
                return  # the client left: nobody to answer
            raise
        except Exception as exc:
            log.exception("internal error")
            status, payload = 500, orjson.dumps({"error": f"internal error: {exc}"})
            headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(payload)).encode()))
        writes = scope.get(WRITES_KEY)
        if isinstance(writes, HeldWrites):
            writes.hold()  # status line, headers and body in one write
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            if isinstance(writes, HeldWrites):
                writes.send()

    async def _body(self, headers: dict[bytes, bytes], receive: ASGIReceive) -> bytes:
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidArgumentError("client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Api:
    """The REST routes other than infer (Starlette handlers over the data plane)."""

    def __init__(self, plane: DataPlane, driver: ControlStatus | None) -> None:
        self.plane = plane  # answers everything
        self.driver = driver  # the re-planning loop, when serving under a policy

    async def live(self, request: Request) -> Response:
        return _json({"live": True})

    async def ready(self, request: Request) -> Response:
        return _ok_if(self.plane.ready(), "ready")

    async def server_metadata(self, request: Request) -> Response:
        return _json(server_metadata_json(self.plane.server_metadata()))

    async def model_ready(self, request: Request) -> Response:
        return _ok_if(self.plane.model_ready(*_mv(request)), "ready")

    async def model_metadata(self, request: Request) -> Response:
        return _json(model_metadata_json(self.plane.model_metadata(*_mv(request))))

    async def model_config(self, request: Request) -> Response:
        return _json(model_config_json(self.plane.model_config(*_mv(request))))

    async def stats(self, request: Request) -> Response:
        p = request.path_params
        return _json(statistics_json(self.plane.statistics(p.get("model"), p.get("version"))))

    async def repo_index(self, request: Request) -> Response:
        return _json(repository_index_json(self.plane.repository_index()))

    async def repo_load(self, request: Request) -> Response:
        await self.plane.load(request.path_params["model"])
        return _json({})

    async def repo_unload(self, request: Request) -> Response:
        await self.plane.unload(request.path_params["model"])
        return _json({})

    async def status(self, request: Request) -> Response:
        return _json(self.plane.status())

    async def plan_apply(self, request: Request) -> Response:
        try:
            doc = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidArgumentError(f"body is not a plan (the JSON that `modelplex plan` writes): {exc}") from None
        new_plan = Plan.from_json(doc)
        problems = admit_problems(new_plan, self.plane.host_shape())
        if problems:
            more = f" (and {len(problems) - _PLAN_PROBLEMS_SHOWN} more)" if len(problems) > _PLAN_PROBLEMS_SHOWN else ""
            raise InvalidArgumentError("plan refused: " + "; ".join(problems[:_PLAN_PROBLEMS_SHOWN]) + more)
        applied = await self.plane.apply_plan(new_plan)
        self.plane.decisions.record(self.plane.clock.now(), "api", "plan posted",
                                    f"{new_plan.policy}: {len(new_plan.slices)} slices ({applied.started} started, "
                                    f"{applied.kept} kept, {applied.drained} retired), switched in {applied.switch_s:.2f} s")
        return _json({"applied": True, "switch_s": round(applied.switch_s, 4), "slices": len(new_plan.slices),
                      "started": applied.started, "kept": applied.kept, "drained": applied.drained})

    async def tasks(self, request: Request) -> Response:
        if self.plane.modelless is None:
            return _json({"tasks": [], "variants": {}, "decisions": []})
        return _json(self.plane.modelless.status())

    async def plan_status(self, request: Request) -> Response:
        doc = self.plane.plan_status()
        doc["controller"] = self.driver.status() if self.driver is not None else None
        return _json(doc)

    async def shm_register(self, request: Request) -> Response:
        try:
            doc = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidArgumentError(f"body is not JSON like {{\"key\": ..., \"offset\": 0, \"byte_size\": ...}}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), str):
            raise InvalidArgumentError("register needs a JSON object with a string 'key', 'offset' and 'byte_size'")
        offset, size = doc.get("offset", 0), doc.get("byte_size")
        if not isinstance(offset, int) or not isinstance(size, int) or isinstance(offset, bool) or isinstance(size, bool):
            raise InvalidArgumentError(f"'offset' and 'byte_size' must be integers, got {offset!r} and {size!r}")
        self.plane.shm.register(request.path_params["name"], doc["key"], offset, size)
        return _json({})

    async def shm_status(self, request: Request) -> Response:
        return _json(self.plane.shm.status(request.path_params.get("name")))

    async def shm_unregister(self, request: Request) -> Response:
        self.plane.shm.unregister(request.path_params.get("name"))
        return _json({})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        mv = "/v2/models/{model}"
        mvv = "/v2/models/{model}/versions/{version}"
        return [
            Route("/v2/health/live", _guard(self.live)),
            Route("/v2/health/ready", _guard(self.ready)),
            Route("/v2", _guard(self.server_metadata)),
            Route("/v2/models/stats", _guard(self.stats)),
            Route(mv + "/stats", _guard(self.stats)),
            Route(mvv + "/stats", _guard(self.stats)),
            Route(mv + "/ready", _guard(self.model_ready)),
            Route(mvv + "/ready", _guard(self.model_ready)),
            Route(mv + "/config", _guard(self.model_config)),
            Route(mvv + "/config", _guard(self.model_config)),
            Route(mv, _guard(self.model_metadata)),
            Route(mvv, _guard(self.model_metadata)),
            Route("/v2/repository/index", _guard(self.repo_index), methods=["POST", "GET"]),
            Route("/v2/repository/models/{model}/load", _guard(self.repo_load), methods=["POST"]),
            Route("/v2/repository/models/{model}/unload", _guard(self.repo_unload), methods=["POST"]),
            Route("/v2/status", _guard(self.status)),
            Route("/v2/tasks", _guard(self.tasks)),
            Route("/v2/plan", _guard(self.plan_status), methods=["GET"]),
            Route("/v2/plan", _guard(self.plan_apply), methods=["POST"]),
            Route("/v2/systemsharedmemory/status", _guard(self.shm_status)),
            Route("/v2/systemsharedmemory/region/{name}/status", _guard(self.shm_status)),
            Route("/v2/systemsharedmemory/region/{name}/register", _guard(self.shm_register), methods=["POST"]),
            Route("/v2/systemsharedmemory/unregister", _guard(self.shm_unregister), methods=["POST"]),
            Route("/v2/systemsharedmemory/region/{name}/unregister", _guard(self.shm_unregister), methods=["POST"]),
            Route("/metrics", self.metrics),
        ]


def _ok_if(flag: bool, key: str) -> Response:
    """Health answers: the status says it (Triton's clients read only that); the body says it too,
    as the Open Inference Protocol's {"live"|"ready": bool} (the KServe SDK reads the body)."""
    return _json({key: flag}, 200 if flag else 400)


def other_protocol(path: str) -> str | None:
    """Why `path`, which no route takes, is from another protocol than KServe v2 (a v1 client's
    `/v1/models/m:predict`, a `/v3/...`), or None when it is just an unknown v2 path."""
    version = path.strip("/").split("/", 1)[0]
    last = path.rsplit("/", 1)[-1]
    verb = last.rsplit(":", 1)[1] if last.endswith((":predict", ":explain")) else None
    if version == "v2" and verb is None:
        return None
    if version == "v2" or (version[:1] == "v" and version[1:].isdigit()):
        what = f"/{version}/ paths are" if version != "v2" else f"':{verb}' (a KServe v1 verb) is"
        return (f"unsupported protocol: {what} not served; this server speaks the KServe v2 (Open Inference) "
                "protocol: POST /v2/models/{model}/infer with {\"inputs\": [...]}, or its gRPC service")
    return None


def _mv(request: Request) -> tuple[str, str | None]:
    p = request.path_params
    return p["model"], p.get("version")


def build_app(
    plane: DataPlane, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, driver: ControlStatus | None = None,
    decoder: DecodePool | None = None, dashboard: "DashboardFeed | None" = None,
) -> InferFastPath:
    routes = _Api(plane, driver).routes()
    if dashboard is not None:
        from modelplex.serving.dashboard.routes import DashboardRoutes

        routes += [Route(path, _guard(fn)) for path, fn in DashboardRoutes(dashboard).handlers()]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        other = other_protocol(request.url.path) if exc.status_code in (404, 405) else None
        if other is not None:
            return _error(400, other)
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return InferFastPath(plane, app, max_body_bytes, decoder or DecodePool())
