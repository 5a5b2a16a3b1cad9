"""Routes for a negotiation's state at (as_of, known_at): read models, statements, the timeline, diffs."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response
from service.http.routes import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.http.auth import require
from service.http.params import AsOf, Expand, KnownAt, LegalBasis, Limit, MinPosition, WorldFrom, WorldTo
from service.http.reads import NOT_MODIFIED, Reads
from service.http.requests import problems
from service.queries.answers import Ask
from service.queries.params import Page, decode_cursor, parse_date, parse_timestamp, parse_world_range
from service.queries.reasons import expansions
from service.queries.state import (
    PARTS,
    DiffOut,
    StateOut,
    TimelinePage,
    diff_between,
    diff_moments,
    encoded_part_at,
    encoded_state_at,
    moment,
    statements_page,
    timeline_page,
)

_SOURCED = (
    "`sources` maps every event id in a `because` of the answer to the source the event was recorded with "
    "(name, id, kind, title, url, published_at, reliability A-F, credibility 1-6; null when it names none); "
    "a source naming a registered id (`/v1/sources`) takes the registry's kind, url and default reliability "
    "where the event leaves them out, and `registered` says whether the id is known. `corroboration` maps each "
    "listed value (`truce`, `tariffs.US->CN`, `measures.<id>`, `deadlines.<id>`, `issues.<id>`, `rounds.<id>`) "
    "to the independent sources among its `because` events (registered ids, else names, case-blind); two or "
    "more corroborate it. With `expand=because`, `because_events` maps the same ids to each event's date, type, one "
    "line (`display`) and source (null without it)."
)


class StateController(Controller):
    path = "/v1/negotiations"
    tags = ["state"]

    @get(
        "/{negotiation_id:str}/state",
        operation_id="getNegotiationState",
        summary="Every read model on as_of, as known at known_at, with the sources behind each value",
        description=_SOURCED,
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def state(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
        expand: Expand = None,
    ) -> Response[StateOut]:
        wanted = expansions(expand)
        day, at = moment(reads.log, parse_date(as_of, "as_of"), parse_timestamp(known_at, "known_at"), None)  # min_position: checked where the answer is read
        ask = Ask("state", negotiation_id, (day, legal_basis, tuple(sorted(wanted))), (at,), as_of is not None and known_at is not None)
        return await reads.cached(ask, min_position, encoded_state_at, negotiation_id, day, at, legal_basis, reads.budget, wanted)

    @get(
        "/{negotiation_id:str}/state/{part:str}",
        operation_id="getNegotiationStatePart",
        summary=f"One read model ({', '.join(PARTS)}) on as_of, as known at known_at",
        description=_SOURCED,
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def state_part(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        part: str,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
        expand: Expand = None,
    ) -> Response[dict[str, Any]]:
        wanted = expansions(expand)
        day, at = moment(reads.log, parse_date(as_of, "as_of"), parse_timestamp(known_at, "known_at"), None)  # min_position: checked where the answer is read
        ask = Ask("part", negotiation_id, (part, day, legal_basis, tuple(sorted(wanted))), (at,), as_of is not None and known_at is not None)
        return await reads.cached(ask, min_position, encoded_part_at, negotiation_id, part, day, at, legal_basis, reads.budget, wanted)

    @get(
        "/{negotiation_id:str}/statements",
        operation_id="listNegotiationStatements",
        summary="Statements made by as_of, as known at known_at, in world order, filtered and cursor-paged",
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def list_statements(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        speaker: Annotated[str | None, QueryParameter(description="The speaker's name, case-blind.")] = None,
        party: Annotated[str | None, QueryParameter(description="The speaker's party code.")] = None,
        topic: Annotated[str | None, QueryParameter(description="A topic, or an issue or measure id the statement is about.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Response[Page]:
        after = decode_cursor(cursor)
        day, at = moment(reads.log, parse_date(as_of, "as_of"), parse_timestamp(known_at, "known_at"), None)  # min_position: checked where the answer is read
        filters = {"speaker": speaker, "party": party, "topic": topic}
        ask = Ask("statements", negotiation_id, (day, speaker, party, topic, after, limit), (at,), as_of is not None and known_at is not None)
        return await reads.cached(ask, min_position, statements_page, negotiation_id, day, at, filters, after, limit, reads.budget)

    @get(
        "/{negotiation_id:str}/timeline",
        operation_id="getNegotiationTimeline",
        summary="The negotiation's events in world order (occurred_on, then position), as known at known_at, cursor-paged",
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def timeline(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        from_: WorldFrom = None,
        to: WorldTo = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Response[TimelinePage]:
        start, end = parse_world_range(from_, to)
        at = parse_timestamp(known_at, "known_at")
        after = decode_cursor(cursor)
        _, now = moment(reads.log, None, at, None)  # min_position: checked where the answer is read
        ask = Ask("timeline", negotiation_id, (start, end, after, limit), (now,), at is not None)
        return await reads.cached(ask, min_position, timeline_page, negotiation_id, start, end, now, after, limit, reads.budget)

    @get(
        "/{negotiation_id:str}/diff",
        operation_id="diffNegotiationState",
        summary="What changed in the state between two world dates, or in our belief between two recording times",
        description="Give `from` and `to` (world dates, at one `known_at`), or `known_from` and `known_to` "
        "(recording times, on one `as_of`). Each change names a path keyed by stable ids, "
        "its value before and after, and the events behind it (`because`); with `expand=because`, `because_events` "
        "maps each of those ids to the event's date, type, one line (`display`) and source.",
        guards=[require("reader")],
        responses={**problems(404, 422), **NOT_MODIFIED},
    )
    async def diff(
        self,
        reads: NamedDependency[Reads],
        negotiation_id: str,
        from_: WorldFrom = None,
        to: WorldTo = None,
        known_from: Annotated[str | None, QueryParameter(description="RFC 3339 recording time before.")] = None,
        known_to: Annotated[str | None, QueryParameter(description="RFC 3339 recording time after.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
        expand: Expand = None,
    ) -> Response[DiffOut]:
        wanted = expansions(expand)
        given = {"from": from_, "to": to, "known_from": known_from, "known_to": known_to, "as_of": as_of, "known_at": known_at}
        moments = diff_moments(given)
        now = moment(reads.log, None, None, None)[1]  # min_position: checked where the answer is read
        before, after = ((day or now.date(), at or now) for day, at in moments)
        explicit = all(day is not None and at is not None for day, at in moments)
        ask = Ask("diff", negotiation_id, (before[0], after[0], legal_basis, tuple(sorted(wanted))), (before[1], after[1]), explicit)
        return await reads.cached(ask, min_position, diff_between, negotiation_id, before, after, legal_basis, reads.budget, wanted)
