"""The one log line per request, and the request id every answer echoes."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
READ_FROM = b"x-parley-read-from"


def request_context(app: ASGIApp) -> ASGIApp:
    """Give each request an id (echoed as X-Request-ID), say which store answered a query (X-Parley-Read-From:
    replica|primary, for tests and operators) and log one line when the request ends."""
    log = structlog.get_logger("parley.http")

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                if side := state.get("read_from"):  # which store answered a query (service/http/reads.py)
                    headers.append((READ_FROM, side.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            principal = state.get("principal")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                request_id=request_id,
                principal=getattr(principal, "name", None),
                negotiation_id=state.get("negotiation_id"),
                position=state.get("position"),
            )

    return middleware
