"""The global event log: the pull feed and single events."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.http.auth import require
from service.http.params import Limit, ReadPosition
from service.http.reads import Reads
from service.http.requests import problems
from service.queries.negotiations import event, feed_page
from service.queries.params import Page, decode_cursor


class EventController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @get(
        "/",
        operation_id="listEvents",
        summary="The global log in position order: the pull feed",
        guards=[require("reader")],
        responses=problems(422),
        sync_to_thread=True,
    )
    def feed(
        self,
        reads: NamedDependency[Reads],
        after: Annotated[int, QueryParameter(ge=0, le=2**62, description="Return events after this position.")] = 0,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Page:
        start = decode_cursor(cursor)
        return reads.answer(min_position, feed_page, start if start is not None else after, limit)

    @get(
        "/{event_id:str}",
        operation_id="getEvent",
        summary="One event, with what corrected or retracted it",
        guards=[require("reader")],
        responses=problems(404, 422),
        sync_to_thread=True,
    )
    def get_event(self, reads: NamedDependency[Reads], event_id: str, min_position: ReadPosition = None) -> dict[str, Any]:
        return reads.answer(min_position, event, event_id)
