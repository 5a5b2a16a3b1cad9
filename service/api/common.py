"""What every route shares: body decoding, paging cursors, write headers, declared problem responses."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from events.application import Appending, ParleyLog
from service.auth import Principal
from service.problems import FieldError, Problem, ProblemError, field_errors, invalid

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
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise ProblemError(
            415, "Unsupported media type", f"send JSON with Content-Type: application/json, not {media!r}",
            [FieldError("Content-Type", "must be application/json")],
        )


def refuse_odd_urls(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """No id holds a '/' or '\\', nor an id or filter a NUL character (PostgreSQL cannot compare one)."""
    raw_path = connection.scope.get("raw_path") or b""
    if b"%2f" in raw_path.lower() or b"%5c" in raw_path.lower():
        # Decoded, an encoded slash would end the id early and reach another resource.
        message = "an id never contains an encoded '/' or '\\'"
        raise ProblemError(404, "Not found", message, [FieldError("path", message)])
    given = [*connection.path_params.items(), *connection.query_params.multi_items()]
    for name, value in given:
        if isinstance(value, str) and "\x00" in value:
            message = "must not contain NUL characters"
            raise ProblemError(400, "Bad request", f"{name}: {message}", [FieldError(name, message)])


def beyond_head(min_position: int, head: int) -> ProblemError:
    """No write has answered a position past the head, so waiting for it would never end."""
    message = f"is beyond the latest recorded position {head}"
    return ProblemError(422, "Invalid request", f"min_position: {min_position} {message}", [FieldError("min_position", message)])


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"p{value}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, field: str = "cursor") -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("p"):
            raise ValueError(cursor)
        value = int(text[1:])
        if value < 0 or value > 2**62:
            raise ValueError(cursor)
    except ValueError:
        raise ProblemError(400, "Bad request", "the cursor is not one this service gave out", [FieldError(field, "unknown cursor")]) from None
    return value


def encode_name_cursor(last: str) -> str:
    """A cursor after `last` for lists ordered by a name or an id."""
    return base64.urlsafe_b64encode(f"s{last}".encode()).decode().rstrip("=")


def decode_name_cursor(cursor: str | None) -> str:
    if cursor is None:
        return ""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("s"):
        raise ProblemError(400, "Bad request", "the cursor is not one this service gave out", [FieldError("cursor", "unknown cursor")])
    return text[1:]


def peek(found: list[T], limit: int, cursor: Callable[[T], str]) -> tuple[list[T], str | None]:
    """A page of `limit` from up to `limit + 1` items: the extra one only says that more follow, so `next` never leads nowhere."""
    page = found[:limit]
    return page, (cursor(page[-1]) if len(found) > limit else None)


def principal(request: Request[Any, Any, Any]) -> Principal:
    return request.scope["state"]["principal"]


def log_of(request: Request[Any, Any, Any]) -> ParleyLog:
    return request.app.state.log


def request_id(request: Request[Any, Any, Any]) -> str:
    return request.scope["state"]["request_id"]


def appending(request: Request[Any, Any, Any], raw: bytes) -> Appending | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(33 <= ord(c) <= 126 for c in key):
        raise ProblemError(
            400, "Bad request", "Idempotency-Key must be 1 to 255 printable ASCII characters",
            [FieldError("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces")],
        )
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + raw).hexdigest()
    return Appending(principal=principal(request).name, key=key, request_hash=digest)


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise ProblemError(400, "Bad request", "If-Match must be a stream version such as \"3\"", [FieldError("If-Match", "must be a version number")])
    return int(text)


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """eventsourcing is synchronous: run store work off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next: str | None
