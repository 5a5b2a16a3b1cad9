"""Route guards: who holds the request's key, and whether its role may do what the route does."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from service.auth import NOT_CACHED, ANONYMOUS, RANK, KeyStore, Principal, Role
from service.http.problems import FieldError, ProblemError
from service.http.requests import raw_header


async def key_principal(keys: KeyStore, secret: str, state: dict[str, Any]) -> Principal | None:
    """Who holds `secret` (None: unknown or revoked): looked up once per request (the rate limiter and the
    guard both ask), on the event loop where the store answers without waiting (an SQLite file), else in a
    worker thread; not at all if it was refused within the last second."""
    asked = state.get("key_lookup")
    if asked is not None and asked[0] == secret:
        return asked[1]  # type: ignore[no-any-return]
    principal = keys.lookup_now(secret)
    if principal is NOT_CACHED:
        principal = await anyio.to_thread.run_sync(keys.authenticate, secret)
    state["key_lookup"] = (secret, principal)
    return principal  # type: ignore[return-value]


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "Unauthorized", detail, [FieldError("Authorization", detail)], {"WWW-Authenticate": 'Bearer realm="parley"'}
    )


async def principal_of(
    connection: ASGIConnection[Any, Any, Any, Any], *, public_read: bool, needed: str, query_key: bool = False
) -> Principal:
    header = raw_header(connection.scope, b"authorization")
    if not header and query_key and connection.query_params.get("key"):
        # Calendar clients cannot send headers; a read-only feed may take its key in the URL.
        header = f"Bearer {connection.query_params['key']}"
    if not header:
        if public_read and needed == "reader":
            return ANONYMOUS
        raise _unauthorized("send an access key as 'Authorization: Bearer <key>'")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    principal = await key_principal(connection.app.state.key_store, secret.strip(), connection.scope.setdefault("state", {}))
    if principal is None:
        raise _unauthorized("unknown or revoked access key")
    return principal


def require(role: Role, *, query_key: bool = False):  # noqa: ANN201 - a litestar guard factory
    """A guard that admits keys of `role` or higher and binds the principal to the request.

    `query_key` also accepts the key as `?key=`, for feeds whose clients cannot send headers.
    """

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        settings = connection.app.state.settings
        principal = await principal_of(connection, public_read=settings.public_read, needed=role, query_key=query_key)
        if RANK[principal.role] < RANK[role]:
            raise ProblemError(
                403, "Forbidden", f"the key {principal.name!r} has role {principal.role!r}; this needs {role!r}",
                [FieldError("Authorization", f"role {role!r} or higher is required")],
            )
        connection.scope["state"]["principal"] = principal

    return guard
