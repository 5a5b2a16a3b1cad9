"""Route decorators (`get`, `post`, `patch`, `delete`): litestar's, except that guards are handed the handler itself.

litestar hands each guard a shallow copy of the route handler (`copy(self)`, some 130 attributes) on every request,
in case the guard changes it. Ours never do, and the two copies a request made were a tenth of a cached answer's cost.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler


class Route(HTTPRouteHandler):
    async def authorize_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        for guard in self.resolve_guards():
            await guard(connection, self)  # type: ignore[arg-type]


def get(path: str | None = None, **options: Any) -> Route:
    return Route(path, http_method=HttpMethod.GET, **options)


def post(path: str | None = None, **options: Any) -> Route:
    return Route(path, http_method=HttpMethod.POST, **options)


def patch(path: str | None = None, **options: Any) -> Route:
    return Route(path, http_method=HttpMethod.PATCH, **options)


def delete(path: str | None = None, **options: Any) -> Route:
    return Route(path, http_method=HttpMethod.DELETE, **options)
