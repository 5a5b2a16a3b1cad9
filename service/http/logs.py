"""The one log line per request, and the request id every answer echoes."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# 32 hex digits like a uuid4's: 64 random bits per process, then a counter (a uuid4 per request read the
# kernel's random source each time, measured at 8 % of a loaded server's samples). Unique, not secret.
_ids = {"prefix": secrets.token_hex(8), "count": itertools.count()}


def _new_process_prefix() -> None:
    """A forked worker (granian forks them) draws its own prefix: ids never repeat across workers."""
    _ids["prefix"], _ids["count"] = secrets.token_hex(8), itertools.count()


os.register_at_fork(after_in_child=_new_process_prefix)


def _next_request_id() -> str:
    return f"{_ids['prefix']}{next(_ids['count']) & 0xFFFFFFFFFFFFFFFF:016x}"  # type: ignore[call-overload]
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
        request_id = incoming if _REQUEST_ID.match(incoming) else _next_request_id()
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
