"""RFC 9457 problem details: the one table that maps errors to HTTP statuses."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import msgspec
import psycopg
import structlog
from eventsourcing.persistence import (
    DataError,
    IntegrityError,
    PersistenceError,
    ProgrammingError,
)
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from events.errors import (
    EventNotFoundError,
    EventRejectedError,
    EventUnreadableError,
    IdempotencyKeyReusedError,
    InvalidQueryError,
    LogDamagedError,
    KeyNameTakenError,
    KeyNotFoundError,
    NegotiationExistsError,
    NegotiationNotFoundError,
    ParleyError,
    PositionNotRecordedError,
    PrincipalNotFoundError,
    ViewBehindError,
    QueryTimeoutError,
    SourceExistsError,
    SourceNotFoundError,
    StoreUnavailableError,
    UnknownPartError,
    VersionConflictError,
    store_unavailable,
)
from events.payloads import EVENT_TYPES, RESERVED_FIELDS, reserved_field_in
from service.webhooks.admin import DeliveryNotFoundError
from service.webhooks.outbound import DestinationRefusedError
from service.webhooks.subscriptions import WebhookNotFoundError

PROBLEM = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []
    request_id: str | None = None
    current_version: int | None = None


class ProblemError(Exception):
    """An HTTP-level problem raised by the service layer (bad JSON, bad header, unknown key...)."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def field_errors(error: msgspec.ValidationError, prefix: str = "") -> list[FieldError]:
    """Turn msgspec's 'message - at `$.path`' into a field name and a reason."""
    field = getattr(error, "field", None)
    if field is not None:  # a RuleViolation raised by a payload's own checks
        return [FieldError(_join(prefix, field), error.reason)]  # type: ignore[attr-defined]
    match = _AT.match(str(error))
    message = match.group("message") if match else str(error)
    path = (match.group("path") or "").lstrip(".") if match else ""
    if found := _MISSING.search(message):
        return [FieldError(_join(prefix, _join(path, found.group(1))), "required field is missing")]
    if found := _UNKNOWN.search(message):
        name = found.group(1)
        if reserved_field_in(message) or name in RESERVED_FIELDS:
            return [FieldError(_join(prefix, _join(path, name)), "is set by the server and may not be sent")]
        return [FieldError(_join(prefix, _join(path, name)), "is not a field of this event type")]
    if path.endswith("type") and message.startswith("Invalid value"):
        allowed = ", ".join(sorted(EVENT_TYPES))
        return [FieldError(_join(prefix, path), f"{message.lower()}; allowed types: {allowed}")]
    return [FieldError(_join(prefix, path) or "$", message)]


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def invalid(errors: list[FieldError], title: str = "Invalid event") -> ProblemError:
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return ProblemError(422, title, detail, errors)


_STATUS: list[tuple[type[ParleyError], int, str]] = [
    (NegotiationNotFoundError, 404, "Negotiation not found"),
    (EventNotFoundError, 404, "Event not found"),
    (SourceNotFoundError, 404, "Source not found"),
    (UnknownPartError, 404, "Not found"),
    (SourceExistsError, 409, "Source exists"),
    (InvalidQueryError, 400, "Bad request"),
    (PositionNotRecordedError, 422, "Invalid request"),
    (KeyNotFoundError, 404, "Key not found"),
    (PrincipalNotFoundError, 404, "Principal not found"),
    (WebhookNotFoundError, 404, "Webhook not found"),
    (DeliveryNotFoundError, 404, "Delivery not found"),
    (DestinationRefusedError, 422, "Destination refused"),
    (NegotiationExistsError, 409, "Negotiation exists"),
    (KeyNameTakenError, 409, "Key name taken"),
    (VersionConflictError, 409, "Version conflict"),
    (EventRejectedError, 422, "Invalid event"),
    (IdempotencyKeyReusedError, 422, "Idempotency-Key reused"),
    (StoreUnavailableError, 503, "Store unavailable"),
    (QueryTimeoutError, 503, "Query timed out"),
    (ViewBehindError, 503, "View behind"),
    (EventUnreadableError, 503, "Event from a newer version"),
    (LogDamagedError, 409, "Log damaged"),
]


# What a client is told about each store fault; the driver's own message (hosts, paths) stays in the log.
_STORE_PROBLEMS = {
    "unreachable": ("Store unavailable", "the event store cannot be reached right now; nothing was stored"),
    "read_only": ("Store read-only", "the event store cannot be written: its database is read-only; nothing was stored"),
    "full": ("Store full", "the event store cannot be written: its disk is full; nothing was stored"),
    "io_error": ("Store I/O error", "the event store's disk failed a read or write; nothing was stored"),
}


def problem_for(error: ParleyError) -> tuple[Problem, dict[str, str]]:
    for kind, status, title in _STATUS:
        if isinstance(error, kind):
            break
    else:  # pragma: no cover - every ParleyError has a row above
        status, title = 500, "Internal error"
    headers: dict[str, str] = {}
    errors: list[FieldError] = []
    extra: dict[str, Any] = {}
    detail = str(error)
    if isinstance(error, EventRejectedError):
        errors = [FieldError(error.field, error.reason)]
    elif isinstance(error, InvalidQueryError):
        errors = [FieldError(field, reason) for field, reason in error.fields]
    elif isinstance(error, PositionNotRecordedError):
        errors = [FieldError("min_position", f"is beyond the latest recorded position {error.head}")]
    elif isinstance(error, UnknownPartError):
        errors = [FieldError("part", f"must be one of {', '.join(error.allowed)}")]
    elif isinstance(error, SourceNotFoundError):
        errors = [FieldError("source_id", "is not a registered source")]
    elif isinstance(error, DestinationRefusedError):
        detail = error.reason
        errors = [FieldError(error.field, error.reason)]
    elif isinstance(error, SourceExistsError):
        errors = [FieldError("id", "is taken")]
    elif isinstance(error, IdempotencyKeyReusedError):
        errors = [FieldError("Idempotency-Key", "was already used with a different request body")]
    elif isinstance(error, VersionConflictError):
        errors = [FieldError("If-Match", f"the negotiation is at version {error.current}")]
        extra["current_version"] = error.current
        headers["ETag"] = f'"{error.current}"'
    elif isinstance(error, StoreUnavailableError):
        title, detail = _STORE_PROBLEMS.get(error.problem, _STORE_PROBLEMS["unreachable"])
        headers["Retry-After"] = "2"
    elif isinstance(error, QueryTimeoutError):
        detail = (
            f"the answer took longer than the {error.seconds:g} s this service allows (PARLEY_QUERY_TIMEOUT) and was "
            "stopped; the events read so far are kept, so a retry goes on from there"
        )
        headers["Retry-After"] = "1"
    elif isinstance(error, ViewBehindError):
        errors = [FieldError("min_position", f"the view is at {error.at}")]
        headers["Retry-After"] = "1"
    elif isinstance(error, EventUnreadableError):
        headers["Retry-After"] = "5"  # a rolling upgrade: another replica, or this one soon, reads it
    return Problem(title=title, status=status, detail=detail, errors=errors, **extra), headers


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _respond(request: Request[Any, Any, Any], problem: Problem, headers: dict[str, str]) -> Response[Any]:
    problem = msgspec.structs.replace(problem, request_id=_request_id(request))
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM,
        headers=headers,
    )


def on_parley_error(request: Request[Any, Any, Any], error: ParleyError) -> Response[Any]:
    problem, headers = problem_for(error)
    if isinstance(error, QueryTimeoutError):
        structlog.get_logger("parley").warning("query_timeout", seconds=error.seconds)
    elif isinstance(error, StoreUnavailableError):
        structlog.get_logger("parley").warning("store_unavailable", problem=error.problem, error=str(error))
    elif isinstance(error, EventUnreadableError):
        structlog.get_logger("parley").error("event_unreadable", negotiation_id=error.negotiation_id, version=error.version,
                                             event_type=error.event_type)
    return _respond(request, problem, headers)


_NOT_FAULTS = (
    IntegrityError, ProgrammingError, DataError,
    sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError,
    psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError,
)


def on_store_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """A store error from the view or webhook tables, which controllers read directly: a fault, or a bug."""
    if isinstance(error, _NOT_FAULTS):
        return on_unexpected(request, error)
    return on_parley_error(request, store_unavailable(error))


def on_problem(request: Request[Any, Any, Any], error: ProblemError) -> Response[Any]:
    return _respond(
        request,
        Problem(title=error.title, status=error.status, detail=error.detail, errors=error.errors),
        error.headers,
    )


def on_http_exception(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    status = error.status_code
    if "route_handler" not in request.scope and (metrics := getattr(request.app.state, "metrics", None)) is not None:
        metrics.count_unrouted(request.scope, status)  # no route, so the metrics middleware never saw it
    errors: list[FieldError] = []
    detail = str(error.detail)
    if isinstance(error, ValidationException) and isinstance(error.extra, list):
        for item in error.extra:
            if isinstance(item, dict):
                errors.append(FieldError(str(item.get("key") or item.get("source") or "$"), str(item.get("message"))))
        if errors:
            detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
              413: "Request body too large", 429: "Too many requests"}
    headers = dict(error.headers or {})
    if status == 413:
        detail = "the request body is over the limit of 1 MiB"
        # The unread rest of the body is still on the connection: say it closes, so a client opens a new one
        headers["Connection"] = "close"
    return _respond(request, Problem(title=titles.get(status, "Error"), status=status, detail=detail, errors=errors), headers)


# nginx's code for a request its client abandoned: only logs and /metrics ever see it.
CLIENT_CLOSED = 499


def on_recursion(request: Request[Any, Any, Any], _: RecursionError) -> Response[Any]:
    return _respond(request, Problem(title="Bad request", status=400, detail="the JSON body is nested too deep"), {})


def on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if request.scope.get("state", {}).get("client_gone"):
        # litestar's "client disconnected prematurely" (a 500 to it): nobody is left to answer, and no fault of Parley's
        structlog.get_logger("parley").info("client_disconnected", error_type=type(error).__name__)
        problem = Problem(title="Client closed request", status=CLIENT_CLOSED, detail="the client hung up before its request was read")
        return _respond(request, problem, {})
    structlog.get_logger("parley").exception("unhandled_error", error_type=type(error).__name__)
    return _respond(
        request,
        Problem(title="Internal error", status=HTTP_500_INTERNAL_SERVER_ERROR, detail="an unexpected error occurred; it has been logged"),
        {},
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ParleyError: on_parley_error,
    PersistenceError: on_store_error,
    sqlite3.Error: on_store_error,
    psycopg.Error: on_store_error,
    ProblemError: on_problem,
    HTTPException: on_http_exception,
    RecursionError: on_recursion,
    HTTP_500_INTERNAL_SERVER_ERROR: on_unexpected,
}

__all__ = ["PROBLEM", "FieldError", "Problem", "ProblemError", "EXCEPTION_HANDLERS", "field_errors", "invalid", "MediaType"]
