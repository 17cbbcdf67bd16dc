"""The dashboard's routes: the page and its two files, its JSON data, the plan's picture. All
are reads (GET), so the auth gate asks for the infer token where one is set."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from modelplex.core.errors import InvalidArgumentError, NotFoundError
from modelplex.serving.dashboard.feed import DashboardFeed

Handler = Callable[[Request], Awaitable[Response]]
_FILES = {"index.html": "text/html; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
_NO_CACHE = {"cache-control": "no-cache"}


def _static() -> dict[str, bytes]:
    here = resources.files("modelplex.serving.dashboard")
    return {name: here.joinpath(name).read_bytes() for name in _FILES}


class DashboardRoutes:
    """Handlers over one feed (the page's files are read once, at start)."""

    def __init__(self, feed: DashboardFeed) -> None:
        self.feed = feed  # the sampled data
        self.files = _static()  # file name -> bytes

    async def page(self, request: Request) -> Response:
        return self._file("index.html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.files:
            raise NotFoundError(f"no dashboard file {name!r}")
        return self._file(name)

    async def data(self, request: Request) -> Response:
        """?after=T: only the series' points after T (what a page that has the rest asks for)."""
        raw = request.query_params.get("after")
        try:
            after = float(raw) if raw not in (None, "") else None
        except ValueError:
            raise InvalidArgumentError(f"'after' must be a number of seconds, got {raw!r}") from None
        return Response(self.feed.data(after), media_type="application/json", headers=_NO_CACHE)

    async def plan_picture(self, request: Request) -> Response:
        return Response(await self.feed.plan_picture(), media_type="image/png", headers=_NO_CACHE)

    def _file(self, name: str) -> Response:
        return Response(self.files[name], media_type=_FILES[name], headers=_NO_CACHE)

    def handlers(self) -> list[tuple[str, Handler]]:
        return [
            ("/dashboard", self.page),
            ("/dashboard/", self.page),
            ("/dashboard/{name}", self.asset),
            ("/v2/dashboard/data", self.data),
            ("/v2/dashboard/plan.png", self.plan_picture),
        ]
