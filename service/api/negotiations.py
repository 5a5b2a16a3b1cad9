"""Negotiations and their event streams: open one, append to it, read it."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response
from service.http.routes import get, post
from litestar.di import NamedDependency
from litestar.params import RawBody

from events.application import Appended, IdempotentReplay, ParleyLog
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
from service.auth import Principal
from service.http.auth import require
from service.http.params import Limit, ReadPosition, Version
from service.http.problems import FieldError, ProblemError, field_errors, invalid
from service.http.reads import NOT_MODIFIED, Reads
from service.http.requests import appending, decode, expected_version, problems, require_json
from service.queries.negotiations import (
    EventFilter,
    NegotiationOut,
    events_page,
    negotiation,
    negotiation_out,
    negotiations_page,
    shown,
)
from service.queries.answers import Ask
from service.queries.params import Page, decode_cursor, ordered


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


class AppendResult(msgspec.Struct, frozen=True):
    events: list[dict[str, Any]]
    position: int


def slugify(title: str) -> str:
    letters = "".join(c for c in unicodedata.normalize("NFKD", title) if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "-", letters.lower()).strip("-")[:80].strip("-")
    return slug or "negotiation"


_decode_event = msgspec.json.Decoder(AnyEvent).decode


def _without_display(raw: bytes) -> bytes:
    """`display` is the API's own (events/describe.py): an event read back and posted again may still carry it."""
    if b'"display"' not in raw:
        return raw
    try:
        body = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return raw  # the decode below says what is wrong with it

    def strip(event: Any) -> None:
        if isinstance(event, dict):
            event.pop("display", None)
            strip_nested = event.get("replacement")
            if isinstance(strip_nested, dict):
                strip_nested.pop("display", None)

    strip(body)
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        for event in body["events"]:
            strip(event)
    return msgspec.json.encode(body)


def _events_from(raw: bytes) -> list[AnyEvent]:
    raw = _without_display(raw)
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
        sync_to_thread=True,
    )
    def create(
        self, request: Request[Any, Any, Any], body: RawBody, log: NamedDependency[ParleyLog], principal: NamedDependency[Principal], request_id: NamedDependency[str], now: NamedDependency[dt.datetime]
    ) -> Response[NegotiationOut]:
        require_json(request)
        given = decode(body, NegotiationCreate, title="Invalid negotiation")
        negotiation_id = given.id or slugify(given.title)
        try:  # the event's own rules (dates in range, no NUL) apply to what the body made of it
            opened = NegotiationOpened(
                occurred_on=given.occurred_on or now.date(),
                source=given.source,
                topics=given.topics,
                title=given.title,
                parties=given.parties,
                description=given.description,
            )
        except msgspec.ValidationError as error:
            raise invalid(field_errors(error), "Invalid negotiation") from None
        try:
            appended = log.record(
                negotiation_id, [opened], principal=principal.name, request_id=request_id,
                appending=appending(request, body, principal),
            )
        except IdempotentReplay as replay:
            appended = replay.appended
        state = log.negotiation(appended[0].record.negotiation_id)
        response = _write_response(request, appended, negotiation_out(state, appended[-1].position))
        response.headers["Location"] = f"/v1/negotiations/{state.negotiation_id}"
        return response

    @get(
        "/",
        operation_id="listNegotiations",
        summary="List negotiations",
        guards=[require("reader")],
        responses=problems(422),
        sync_to_thread=True,
    )
    def list_negotiations(
        self, reads: NamedDependency[Reads], limit: Limit = 100, cursor: str | None = None, min_position: ReadPosition = None
    ) -> Page:
        return reads.answer(min_position, negotiations_page, decode_cursor(cursor), limit)

    @get(
        "/{negotiation_id:str}",
        operation_id="getNegotiation",
        summary="One negotiation: title, parties, version, event count, first and last occurred_on",
        guards=[require("reader")],
        responses=problems(404, 422),
        sync_to_thread=True,
    )
    def get_negotiation(self, reads: NamedDependency[Reads], negotiation_id: str, min_position: ReadPosition = None) -> Response[NegotiationOut]:
        state = reads.answer(min_position, negotiation, negotiation_id)
        return Response(negotiation_out(state), headers={"ETag": f'"{state.version}"'})

    @post(
        "/{negotiation_id:str}/events",
        operation_id="appendEvents",
        summary="Append one event or a batch {events: [...]}, all or nothing",
        guards=[require("reporter")],
        status_code=201,
        responses=problems(403, 404, 409, 413, 415, 422),
        sync_to_thread=True,
    )
    def append(
        self, request: Request[Any, Any, Any], body: RawBody, log: NamedDependency[ParleyLog], principal: NamedDependency[Principal], request_id: NamedDependency[str],
        negotiation_id: str,
    ) -> Response[AppendResult]:
        require_json(request)
        events = _events_from(body)
        if any(isinstance(e, NegotiationOpened) for e in events):
            raise ProblemError(
                422, "Invalid event", "open a negotiation with POST /v1/negotiations",
                [FieldError("type", "negotiation_opened is appended by POST /v1/negotiations")],
            )
        try:
            appended = log.record(
                negotiation_id, events, principal=principal.name, request_id=request_id,
                expected_version=expected_version(request), appending=appending(request, body, principal),
            )
        except IdempotentReplay as replay:
            appended = replay.appended
        result = AppendResult(events=[shown(a) for a in appended], position=appended[-1].position)
        return _write_response(request, appended, result)

    @get(
        "/{negotiation_id:str}/events",
        operation_id="listNegotiationEvents",
        summary="A negotiation's events in stream order, filtered and cursor-paged",
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def list_events(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        type: str | None = None,  # noqa: A002 - the API's own name
        topic: str | None = None,
        occurred_from: dt.date | None = None,
        occurred_to: dt.date | None = None,
        after_version: Version = 0,
        limit: Limit = 100,
        cursor: str | None = None,
        min_position: ReadPosition = None,
    ) -> Response[Page]:
        ordered(occurred_from, occurred_to, ("occurred_from", "occurred_to"))
        types = tuple(sorted(set(type.split(",")))) if type else None
        keep = EventFilter(frozenset(types) if types else None, topic, occurred_from, occurred_to)
        after = decode_cursor(cursor)
        start = after if after is not None else after_version
        # A page is a function of the stream's events (corrections are in the same stream): keyed by the stream
        # as it stands now, so an append or a correction makes a new key.
        now = reads.log.clock().astimezone(dt.UTC)
        ask = Ask("events", negotiation_id, (types, topic, occurred_from, occurred_to, start, limit), (now,))
        return await reads.cached(ask, min_position, events_page, negotiation_id, keep, start, limit)
