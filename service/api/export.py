"""Exports of a negotiation (JSON Lines, TimelineJS, iCalendar, CSV), read from the store and streamed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter
from litestar.response import Stream

from events.application import ParleyLog
from events.payloads import CORRECTION_TYPES
from events.records import Recorded
from service.queries.live import LiveStates
from service.api.common import in_thread, log_of, problems
from service.api.state import KnownAt, parse_timestamp
from service.auth import require
from service.exports import (
    FORMATS,
    Format,
    amendments_in,
    jsonl_lines,
    rendered,
)
from service.problems import FieldError, ProblemError
from service.reads import ReadPosition, read

# Stored events read per query, and JSON lines sent per chunk.
PAGE = 500
HISTORIES = ("current", "full")

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

MEDIA_TYPES: dict[Format, str] = {
    "jsonl": "application/x-ndjson",
    "timelinejs": "application/json",
    "ics": "text/calendar",
    "csv": "text/csv",
}
FILE_NAMES: dict[Format, str] = {
    "jsonl": "{}.jsonl",
    "timelinejs": "{}.timeline.json",
    "ics": "{}-deadlines.ics",
    "csv": "{}-tariffs.csv",
}


@dataclasses.dataclass(frozen=True)
class Export:
    media_type: str
    filename: str
    # produced lazily: reading them may still go to the store
    chunks: Iterator[bytes]


def choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        message = f"must be one of {', '.join(allowed)}"
        raise ProblemError(400, "Bad request", f"{field}: {message}, not {value!r}", [FieldError(field, message)])
    return value


def stored(
    log: ParleyLog, negotiation_id: str, up_to: int, match: Callable[[Recorded], bool] | None = None
) -> Iterator[Recorded]:
    """The stream's records up to version `up_to`, read a page at a time."""
    after = 0
    while after < up_to:
        found, more = log.stream(negotiation_id, after_version=after, limit=PAGE, match=match)
        for appended in found:
            if appended.record.originator_version > up_to:
                return
            yield appended.record
        if more is None:
            return
        after = more


def _batches(lines: Iterator[bytes], size: int) -> Iterator[bytes]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield b"".join(batch)
            batch = []
    if batch:
        yield b"".join(batch)


def _jsonl(log: ParleyLog, negotiation_id: str, known_at: dt.datetime, history: bool) -> Iterator[bytes]:
    # Pin the version, so both passes read one snapshot while writers go on appending.
    up_to = log.negotiation(negotiation_id).version

    def known(record: Recorded) -> bool:
        return record.recorded_at <= known_at

    def known_amendment(record: Recorded) -> bool:
        return record.event.type in CORRECTION_TYPES and known(record)

    # Only the amendments are held in memory; the events stream past.
    amendments = None if history else amendments_in(stored(log, negotiation_id, up_to, known_amendment))
    return _batches(jsonl_lines(stored(log, negotiation_id, up_to, known), amendments), PAGE)


def export(
    log: ParleyLog, states: LiveStates, negotiation_id: str, fmt: Format, *, known_at: dt.datetime, history: bool = False
) -> Export:
    """An export of what was recorded by `known_at`; NegotiationNotFoundError before anything is produced."""
    if fmt == "jsonl":
        chunks = _jsonl(log, negotiation_id, known_at, history)
    else:
        chunks = rendered(states.state(negotiation_id), fmt, known_at)
    return Export(media_type=MEDIA_TYPES[fmt], filename=FILE_NAMES[fmt].format(negotiation_id), chunks=chunks)


async def _in_threads(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Each chunk may read the store: off the event loop, one chunk at a time.
    while (chunk := await in_thread(next, chunks, None)) is not None:
        yield chunk


def _streamed(made: Export, disposition: str) -> Stream:
    return Stream(
        _in_threads(made.chunks),
        media_type=made.media_type,
        headers={"Content-Disposition": f'{disposition}; filename="{made.filename}"'},
    )


def _known_at(request: Request[Any, Any, Any], known_at: str | None) -> dt.datetime:
    return parse_timestamp(known_at, "known_at") or log_of(request).clock().astimezone(dt.UTC)


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
    )
    async def export_negotiation(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        format: FormatParam = "jsonl",  # noqa: A002 - the API's own name
        history: HistoryParam = "current",
        known_at: KnownAt = None,
        min_position: ReadPosition = None,
    ) -> Stream:
        fmt: Format = choice(format, FORMATS, "format")  # type: ignore[assignment]
        full = choice(history, HISTORIES, "history") == "full"
        at = _known_at(request, known_at)
        made = await read(request, lambda r: export(r.log, r.states, negotiation_id, fmt, known_at=at, history=full), min_position)
        return _streamed(made, "attachment")

    @get(
        "/{negotiation_id:str}/deadlines.ics",
        operation_id="getNegotiationDeadlinesCalendar",
        summary="The negotiation's deadlines as an iCalendar feed, for a calendar subscription",
        description="One all-day event per deadline on its current due date. Its UID stays the same when the "
        "deadline moves and its SEQUENCE counts the extensions, so subscribed calendars move the event.",
        media_type=MEDIA_TYPES["ics"],
        guards=[require("reader", query_key=True)],
        responses=problems(404),
    )
    async def deadlines_calendar(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        known_at: KnownAt = None,
        key: Annotated[
            str | None, QueryParameter(description="An access key, for calendar clients that cannot send an Authorization header.")
        ] = None,
    ) -> Stream:
        del key  # read by the guard
        at = _known_at(request, known_at)
        made = await read(request, lambda r: export(r.log, r.states, negotiation_id, "ics", known_at=at))
        return _streamed(made, "inline")
