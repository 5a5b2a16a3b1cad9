"""Exports of a negotiation (JSON Lines, TimelineJS, iCalendar, CSV), read from the store and streamed."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio.to_thread
from litestar import Controller
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from service.http.auth import require
from service.http.params import KnownAt, ReadPosition
from service.http.reads import Reads
from service.http.requests import problems
from service.queries.exports import FORMATS, HISTORIES, MEDIA_TYPES, Export, Format, export
from service.queries.params import choice, parse_timestamp

FormatParam = Annotated[
    str,
    QueryParameter(
        description="jsonl (one event a line, re-importable), timelinejs (TimelineJS3 JSON), "
        "ics (iCalendar feed of deadlines) or csv (tariff changes over time).",
    ),
]
HistoryParam = Annotated[
    str,
    QueryParameter(
        description="jsonl only. current: events as now believed (corrections applied, retracted events left out), "
        "re-importable; full: every event as recorded, corrections and retractions included, for archives.",
    ),
]


async def _in_threads(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Each chunk may read the store: off the event loop, one chunk at a time.
    while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
        yield chunk


def _streamed(made: Export, disposition: str) -> Stream:
    return Stream(
        _in_threads(made.chunks),
        media_type=made.media_type,
        headers={"Content-Disposition": f'{disposition}; filename="{made.filename}"'},
    )


class ExportController(Controller):
    path = "/v1/negotiations"
    tags = ["exports"]

    @get(
        "/{negotiation_id:str}/export",
        operation_id="exportNegotiation",
        summary="Export a negotiation as JSON Lines, TimelineJS JSON, an iCalendar feed of deadlines or a tariff CSV",
        description="jsonl re-imports to an identical timeline: POST the first line's fields to /v1/negotiations, "
        "then the other lines to its events. timelinejs shows events as slides and truces as eras; ics has one "
        "all-day event per deadline on its current due date; csv has one row per tariff change.",
        guards=[require("reader")],
        responses=problems(404, 422),
        sync_to_thread=True,
    )
    def export_negotiation(
        self,
        reads: NamedDependency[Reads],
        now: NamedDependency[dt.datetime],
        negotiation_id: str,
        format: FormatParam = "jsonl",  # noqa: A002 - the API's own name
        history: HistoryParam = "current",
        known_at: KnownAt = None,
        min_position: ReadPosition = None,
    ) -> Stream:
        fmt: Format = choice(format, FORMATS, "format")  # type: ignore[assignment]
        full = choice(history, HISTORIES, "history") == "full"
        at = parse_timestamp(known_at, "known_at") or now
        return _streamed(reads.answer(min_position, export, negotiation_id, fmt, known_at=at, history=full), "attachment")

    @get(
        "/{negotiation_id:str}/deadlines.ics",
        operation_id="getNegotiationDeadlinesCalendar",
        summary="The negotiation's deadlines as an iCalendar feed, for a calendar subscription",
        description="One all-day event per deadline on its current due date. Its UID stays the same when the "
        "deadline moves and its SEQUENCE counts the extensions, so subscribed calendars move the event.",
        media_type=MEDIA_TYPES["ics"],
        guards=[require("reader", query_key=True)],
        responses=problems(404),
        sync_to_thread=True,
    )
    def deadlines_calendar(
        self,
        reads: NamedDependency[Reads],
        now: NamedDependency[dt.datetime],
        negotiation_id: str,
        known_at: KnownAt = None,
        key: Annotated[
            str | None, QueryParameter(description="An access key, for calendar clients that cannot send an Authorization header.")
        ] = None,
    ) -> Stream:
        del key  # read by the guard
        at = parse_timestamp(known_at, "known_at") or now
        return _streamed(reads.answer(None, export, negotiation_id, "ics", known_at=at), "inline")
