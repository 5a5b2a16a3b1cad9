"""The global event log: the pull feed and single events."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter

from service.api.common import Page, decode_cursor, encode_cursor, peek, problems
from service.api.negotiations import Limit, with_corrections
from service.auth import require
from service.reads import ReadPosition, ReadStore, read


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get("/", operation_id="listEvents", summary="The global log in position order: the pull feed", guards=[require("reader")], responses=problems(422))
    async def feed(
        self,
        request: Request[Any, Any, Any],
        after: Annotated[int, QueryParameter(ge=0, le=2**62, description="Return events after this position.")] = 0,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Page:
        start = decode_cursor(cursor)

        def page(store: ReadStore) -> Page:
            found, _ = store.log.feed(after=start if start is not None else after, limit=limit + 1)
            items, more = peek(found, limit, lambda appended: encode_cursor(appended.position))
            return Page(items=with_corrections(store.log, items), next=more)

        return await read(request, page, min_position)

    @get("/{event_id:str}", operation_id="getEvent", summary="One event, with what corrected or retracted it", guards=[require("reader")], responses=problems(404, 422))
    async def get_event(self, request: Request[Any, Any, Any], event_id: str, min_position: ReadPosition = None) -> dict[str, Any]:
        return await read(request, lambda r: with_corrections(r.log, [r.log.event(event_id.lower())])[0], min_position)
