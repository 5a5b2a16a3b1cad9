"""What every route shares: body decoding, write headers, odd URLs refused, declared problem responses."""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import Scope

from events.application import Appending
from service.auth import Principal
from service.http.problems import FieldError, Problem, ProblemError, field_errors, invalid

T = TypeVar("T")

_DESCRIPTIONS = {
    400: "The body is not JSON, is nested too deep, or a query parameter does not parse.",
    401: "No key, an unknown key or a revoked key.",
    403: "The key's role may not do this.",
    404: "No such resource.",
    409: "Stale If-Match version, or an id that exists.",
    413: "The body is over 1 MiB.",
    415: "The body is not sent as application/json.",
    422: "Well-formed JSON that breaks a rule, or a parameter out of its range (e.g. a min_position no write has answered).",
    429: "Over the key's rate limit (or the client address's, without a key); see Retry-After and RateLimit-*.",
    503: "The store is unreachable, read-only or full, a view has not reached min_position within the wait, or the answer ran past its time limit; see Retry-After.",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """Declare the problem responses a route can give, for the OpenAPI schema."""
    return {
        status: ResponseSpec(data_container=Problem, description=_DESCRIPTIONS[status], media_type="application/problem+json")
        for status in sorted({400, 401, 429, 503, *statuses})
    }


def decode(raw: bytes, type_: type[T], *, prefix: str = "", title: str = "Invalid request") -> T:
    """Decode JSON into `type_`: 400 when it is not JSON or too deep, 422 naming the field otherwise."""
    try:
        return msgspec.json.decode(raw, type=type_)
    except RecursionError:
        raise ProblemError(400, "Bad request", "the JSON body is nested too deep") from None
    except msgspec.ValidationError as error:
        _refuse_deep_nesting(raw)
        raise invalid(field_errors(error, prefix), title) from None
    except msgspec.DecodeError as error:
        raise ProblemError(400, "Bad request", f"the body is not valid JSON: {error}", [FieldError("$", str(error))]) from None


def _refuse_deep_nesting(raw: bytes) -> None:
    # A typed decode can stop at the first wrong type before it reaches the depth; say which it is.
    try:
        msgspec.json.decode(raw)
    except RecursionError:
        raise ProblemError(400, "Bad request", "the JSON body is nested too deep") from None
    except msgspec.DecodeError:
        return


def require_json(request: Request[Any, Any, Any]) -> None:
    # Only JSON itself: an absent or empty type, or a vendor "+json" type, is not a promise of this body's schema.
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ProblemError(
            415, "Unsupported media type", f"send JSON with Content-Type: application/json, not {media!r}",
            [FieldError("Content-Type", "must be application/json")],
        )


async def refuse_odd_urls(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """No id holds a '/' or '\\', nor an id or filter a NUL character (PostgreSQL cannot compare one).

    Async though it awaits nothing: litestar runs a synchronous guard in a worker thread, a hop on every request.
    """
    raw_path = connection.scope.get("raw_path") or b""
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered:
        # Decoded, an encoded slash would end the id early and reach another resource.
        message = "an id never contains an encoded '/' or '\\'"
        raise ProblemError(404, "Not found", message, [FieldError("path", message)])
    query = connection.scope.get("query_string", b"")
    if raw_path and b"%00" not in raw_path and b"%00" not in query and b"\x00" not in raw_path and b"\x00" not in query:
        return  # a NUL reaches a decoded value only from one of these: nothing to look for, value by value
    given = [*connection.path_params.items(), *connection.query_params.multi_items()]
    for name, value in given:
        if isinstance(value, str) and "\x00" in value:
            message = "must not contain NUL characters"
            raise ProblemError(400, "Bad request", f"{name}: {message}", [FieldError(name, message)])


def raw_header(scope: Scope, name: bytes) -> str | None:
    """A request header straight from the ASGI scope (names arrive lowercased), without building litestar's Headers."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def appending(request: Request[Any, Any, Any], raw: bytes, principal: Principal) -> Appending | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(33 <= ord(c) <= 126 for c in key):
        raise ProblemError(
            400, "Bad request", "Idempotency-Key must be 1 to 255 printable ASCII characters",
            [FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces")],
        )
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + raw).hexdigest()
    return Appending(principal=principal.name, key=key, request_hash=digest)


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # str.isdigit() is true of "³" and "٣"
        raise ProblemError(400, "Bad request", "If-Match must be a stream version such as \"3\"", [FieldError("If-Match", "must be a version number")])
    return int(text)
