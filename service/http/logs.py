"""The one log line per request, and the request id every answer echoes."""

from __future__ import annotations

import itertools
import os
import re
import secrets
from typing import Any

from litestar.types import Scope

from service.http.requests import raw_header

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


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID when it is a sane one, else a new id."""
    incoming = raw_header(scope, b"x-request-id") or ""
    return incoming if _REQUEST_ID.match(incoming) else _next_request_id()


def answer_headers(state: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """What every answer says about itself: its request id, and which store answered a query (X-Parley-Read-From:
    replica|primary, for tests and operators; service/http/reads.py)."""
    headers = [(b"x-request-id", state["request_id"].encode())]
    if side := state.get("read_from"):
        headers.append((READ_FROM, side.encode()))
    return headers


def log_request(log: Any, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
    """The one line a request leaves, when it has ended."""
    principal = state.get("principal")
    log.info(
        "request",
        method=scope["method"],
        path=scope["path"],
        status=status,
        duration_ms=round(seconds * 1000, 2),
        request_id=state["request_id"],
        principal=getattr(principal, "name", None),
        negotiation_id=state.get("negotiation_id"),
        position=state.get("position"),
    )
