"""Negotiations and their event streams."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter

from events.application import Appended, IdempotentReplay, envelope
from events.negotiation import Negotiation
from events.payloads import (
    AnyEvent,
    Name,
    NegotiationOpened,
    PartyCode,
    Slug,
    Source,
    Tags,
    Text,
    WorldDate,
)
from events.records import Recorded
from service.api.common import (
    Page,
    appending,
    decode,
    decode_cursor,
    encode_cursor,
    expected_version,
    in_thread,
    log_of,
    peek,
    principal,
    problems,
    request_id,
    require_json,
)
from service.auth import require
from service.problems import FieldError, ProblemError, field_errors, invalid
from service.reads import ReadPosition, ReadStore, read

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Page size, at most 1,000.")]
Version = Annotated[int, QueryParameter(ge=0, le=2**62)]


class NegotiationCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Slug | None = None
    title: Name
    parties: Annotated[tuple[PartyCode, ...], msgspec.Meta(min_length=1, max_length=50)]
    description: Text | None = None
    occurred_on: WorldDate | None = None
    source: Source | None = None
    topics: Tags = ()


class EventBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    events: Annotated[list[AnyEvent], msgspec.Meta(min_length=1, max_length=1000)]


class NegotiationOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str
    parties: tuple[str, ...]
    description: str | None
    version: int
    event_count: int
    first_occurred_on: dt.date | None
    last_occurred_on: dt.date | None
    opened_by: str
    opened_at: dt.datetime
    last_recorded_at: dt.datetime | None
    position: int | None = None


class AppendResult(msgspec.Struct, frozen=True):
    events: list[dict[str, Any]]
    position: int


def slugify(title: str) -> str:
    letters = "".join(c for c in unicodedata.normalize("NFKD", title) if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "-", letters.lower()).strip("-")[:80].strip("-")
    return slug or "negotiation"


def negotiation_out(state: Negotiation, position: int | None = None) -> NegotiationOut:
    return NegotiationOut(
        id=state.negotiation_id,
        title=state.title,
        parties=state.parties,
        description=state.description,
        version=state.version,
        event_count=state.event_count,
        first_occurred_on=state.first_occurred_on,
        last_occurred_on=state.last_occurred_on,
        opened_by=state.opened_by,
        opened_at=state.opened_at,
        last_recorded_at=state.last_recorded_at,
        position=position,
    )


_decode_event = msgspec.json.Decoder(AnyEvent).decode


def _events_from(raw: bytes) -> list[AnyEvent]:
    try:
        return [_decode_event(raw)]  # the common case, decoded once
    except (msgspec.DecodeError, RecursionError):
        pass  # a batch, or a bad body: the slower path below names what is wrong
    top = decode(raw, dict[str, msgspec.Raw], title="Invalid event")
    if "events" in top:
        return decode(raw, EventBatch, title="Invalid event").events
    if "type" not in top:
        raise ProblemError(
            422, "Invalid event", "send one event {\"type\": ...} or a batch {\"events\": [...]}",
            [FieldError("type", "required field is missing")],
        )
    return [decode(raw, AnyEvent, title="Invalid event")]  # type: ignore[arg-type]


def _write_response(request: Request[Any, Any, Any], appended: list[Appended], body: Any, status: int = 201) -> Response[Any]:
    last = appended[-1]
    request.scope["state"]["position"] = last.position
    request.scope["state"]["negotiation_id"] = last.record.negotiation_id
    headers = {"ETag": f'"{last.record.originator_version}"', "X-Parley-Position": str(last.position)}
    return Response(content=body, status_code=status, headers=headers)


class NegotiationController(Controller):
    path = "/v1/negotiations"
    tags = ["negotiations"]

    @post(
        "/",
        operation_id="createNegotiation",
        summary="Open a negotiation (appends negotiation_opened)",
        guards=[require("reporter")],
        status_code=201,
        responses=problems(403, 409, 413, 415, 422),
    )
    async def create(self, request: Request[Any, Any, Any]) -> Response[NegotiationOut]:
        require_json(request)
        raw = await request.body()
        body = decode(raw, NegotiationCreate, title="Invalid negotiation")
        negotiation_id = body.id or slugify(body.title)
        try:  # the event's own rules (dates in range, no NUL) apply to what the body made of it
            opened = NegotiationOpened(
                occurred_on=body.occurred_on or dt.datetime.now(dt.UTC).date(),
                source=body.source,
                topics=body.topics,
                title=body.title,
                parties=body.parties,
                description=body.description,
            )
        except msgspec.ValidationError as error:
            raise invalid(field_errors(error), "Invalid negotiation") from None
        log = log_of(request)
        try:
            appended = await in_thread(
                log.record,
                negotiation_id,
                [opened],
                principal=principal(request).name,
                request_id=request_id(request),
                appending=appending(request, raw),
            )
        except IdempotentReplay as replay:
            appended = replay.appended
        state = await in_thread(log.negotiation, appended[0].record.negotiation_id)
        response = _write_response(request, appended, negotiation_out(state, appended[-1].position))
        response.headers["Location"] = f"/v1/negotiations/{state.negotiation_id}"
        return response

    @get("/", operation_id="listNegotiations", summary="List negotiations", guards=[require("reader")], responses=problems(422))
    async def list_negotiations(
        self, request: Request[Any, Any, Any], limit: Limit = 100, cursor: str | None = None, min_position: ReadPosition = None
    ) -> Page:
        after = decode_cursor(cursor) or 0
        found, _ = await read(request, lambda r: r.log.negotiations(after=after, limit=limit + 1), min_position)
        listed, more = peek(found, limit, lambda pair: encode_cursor(pair[0]))
        return Page(items=[negotiation_out(state) for _, state in listed], next=more)

    @get(
        "/{negotiation_id:str}",
        operation_id="getNegotiation",
        summary="One negotiation: title, parties, version, event count, first and last occurred_on",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def get_negotiation(
        self, request: Request[Any, Any, Any], negotiation_id: str, min_position: ReadPosition = None
    ) -> Response[NegotiationOut]:
        state = await read(request, lambda r: r.log.negotiation(negotiation_id), min_position)
        return Response(negotiation_out(state), headers={"ETag": f'"{state.version}"'})

    @post(
        "/{negotiation_id:str}/events",
        operation_id="appendEvents",
        summary="Append one event or a batch {events: [...]}, all or nothing",
        guards=[require("reporter")],
        status_code=201,
        responses=problems(403, 404, 409, 413, 415, 422),
    )
    async def append(self, request: Request[Any, Any, Any], negotiation_id: str) -> Response[AppendResult]:
        require_json(request)
        raw = await request.body()
        events = _events_from(raw)
        if any(isinstance(e, NegotiationOpened) for e in events):
            raise ProblemError(
                422, "Invalid event", "open a negotiation with POST /v1/negotiations",
                [FieldError("type", "negotiation_opened is appended by POST /v1/negotiations")],
            )
        log = log_of(request)
        try:
            appended = await in_thread(
                log.record,
                negotiation_id,
                events,
                principal=principal(request).name,
                request_id=request_id(request),
                expected_version=expected_version(request),
                appending=appending(request, raw),
            )
        except IdempotentReplay as replay:
            appended = replay.appended
        body = AppendResult(events=[envelope(a) for a in appended], position=appended[-1].position)
        return _write_response(request, appended, body)

    @get(
        "/{negotiation_id:str}/events",
        operation_id="listNegotiationEvents",
        summary="A negotiation's events in stream order, filtered and cursor-paged",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        type: str | None = None,  # noqa: A002 - the API's own name
        topic: str | None = None,
        occurred_from: dt.date | None = None,
        occurred_to: dt.date | None = None,
        after_version: Version = 0,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Page:
        types = set(type.split(",")) if type else None
        after = decode_cursor(cursor)

        def match(record: Recorded) -> bool:
            event = record.event
            return (
                (types is None or event.type in types)
                and (topic is None or topic in event.topics)
                and (occurred_from is None or event.occurred_on >= occurred_from)
                and (occurred_to is None or event.occurred_on <= occurred_to)
            )

        def page(store: ReadStore) -> Page:
            start = after if after is not None else after_version
            found, _ = store.log.stream(negotiation_id, after_version=start, limit=limit + 1, match=match)
            items, more = peek(found, limit, lambda appended: encode_cursor(appended.record.originator_version))
            return Page(items=with_corrections(store.log, items), next=more)

        return await read(request, page, min_position)


def with_corrections(log: Any, items: list[Appended]) -> list[dict[str, Any]]:
    corrections = log.corrections([a.record.event_id for a in items])
    return [envelope(a, corrections.get(a.record.event_id)) for a in items]
