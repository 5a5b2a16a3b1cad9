"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from service.api.common import in_thread, log_of, problems


@get("/health", operation_id="health", summary="The process is up", tags=["operations"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", operation_id="ready", summary="The store answers", tags=["operations"], responses={503: problems()[503]})
async def ready(request: Request[Any, Any, Any]) -> dict[str, Any]:
    log = log_of(request)
    await in_thread(log.ping)
    return {"status": "ready", "position": await in_thread(log.head)}
