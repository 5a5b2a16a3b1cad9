"""The global event log: the pull feed and single events."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from service.api.common import (
    Page,
    decode_cursor,
    encode_cursor,
    in_thread,
    log_of,
    peek,
    problems,
)
from service.api.negotiations import Limit, with_corrections
from service.auth import require


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get("/", operation_id="listEvents", summary="The global log in position order: the pull feed", guards=[require("reader")], responses=problems())
    async def feed(
        self,
        request: Request[Any, Any, Any],
        after: Annotated[int, Parameter(ge=0, le=2**62, description="Return events after this position.")] = 0,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        start = decode_cursor(cursor)
        log = log_of(request)
        found, _ = await in_thread(log.feed, after=start if start is not None else after, limit=limit + 1)
        items, more = peek(found, limit, lambda appended: encode_cursor(appended.position))
        return Page(items=await in_thread(with_corrections, log, items), next=more)

    @get("/{event_id:str}", operation_id="getEvent", summary="One event, with what corrected or retracted it", guards=[require("reader")], responses=problems(404))
    async def get_event(self, request: Request[Any, Any, Any], event_id: str) -> dict[str, Any]:
        log = log_of(request)
        appended = await in_thread(log.event, event_id.lower())
        return (await in_thread(with_corrections, log, [appended]))[0]
