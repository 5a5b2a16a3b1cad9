"""A negotiation's state at (as_of, known_at): read models, statements, the timeline in world order, diffs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import QueryParameter

from events.application import Appended, ParleyLog
from events.payloads import FIRST_WORLD_DATE, LAST_WORLD_DATE, WORLD_DATE_RANGE
from events.records import Recorded
from projections import (
    DeadlinesView,
    IssuesView,
    MeasuresView,
    RoundsView,
    State,
    TariffScheduleView,
    TruceView,
    View,
    deadlines,
    issues,
    measures,
    rounds,
    statements,
    tariff_schedule,
    truce,
    view,
)
from projections.coverage import CoverageView, coverage
from service.queries.live import LiveStates
from service.queries.timelimit import TimeLimit
from service.api.common import (
    Page,
    beyond_head,
    decode_cursor,
    encode_cursor,
    in_thread,
    log_of,
    problems,
)
from service.api.negotiations import Limit, with_corrections
from service.api.sources import (
    Corroboration,
    SourceOut,
    SourceRegistry,
    because_ids,
    independent,
    sources_behind,
)
from service.auth import require
from service.problems import FieldError, ProblemError
from service.reads import read

AsOf = Annotated[str | None, QueryParameter(description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}; default today (UTC).")]
KnownAt = Annotated[
    str | None, QueryParameter(description="RFC 3339 timestamp with an offset or Z: use what was recorded by then; default now.")
]
MinPosition = Annotated[
    int | None, QueryParameter(ge=0, le=2**62, description="A position a write answered: read at least up to it (422 past the log's head).")
]
LegalBasis = Annotated[str | None, QueryParameter(description="Keep tariffs whose legal basis contains this (case-blind).")]
WorldFrom = Annotated[str | None, QueryParameter(name="from", description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}.")]
WorldTo = Annotated[str | None, QueryParameter(name="to", description=f"World date YYYY-MM-DD {WORLD_DATE_RANGE}.")]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A '+' in an unencoded query string arrives as a space; the offset it began is still unambiguous.
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(?:([Zz])|([+\- ])(\d{2}:\d{2}))")


class StateOut(msgspec.Struct, frozen=True, kw_only=True):
    as_of: dt.date
    known_at: dt.datetime
    position: int
    # how far the record is kept complete, and whether as_of is past it
    coverage: CoverageView
    truce: TruceView
    tariffs: TariffScheduleView
    measures: MeasuresView
    deadlines: DeadlinesView
    issues: IssuesView
    rounds: RoundsView
    # every event id in a `because` above -> its source and grades (None: the event names none)
    sources: dict[str, SourceOut | None] = {}
    # per listed value (`truce`, `tariffs.US->CN`, `deadlines.<id>`, ...): its independent sources
    corroboration: dict[str, Corroboration] = {}


class Moment(msgspec.Struct, frozen=True, kw_only=True):
    as_of: dt.date
    known_at: dt.datetime
    # the last event of the negotiation recorded by known_at (0: none)
    position: int


class Change(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    before: Any
    after: Any
    because: tuple[str, ...]


class DiffOut(msgspec.Struct, frozen=True, kw_only=True):
    before: Moment
    after: Moment
    changes: list[Change]
    # the record's coverage as known at the later moment; beyond_record: the later as_of is past it
    coverage: CoverageView


class TimelinePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Any]
    next: str | None
    # the record's coverage as known at known_at; beyond_record: `to` is past it
    coverage: CoverageView


PARTS: dict[str, Callable[[View, str | None], Any]] = {
    "truce": lambda v, _: truce(v),
    "tariffs": lambda v, legal_basis: tariff_schedule(v, legal_basis=legal_basis),
    "measures": lambda v, _: measures(v),
    "deadlines": lambda v, _: deadlines(v),
    "issues": lambda v, _: issues(v),
    "rounds": lambda v, _: rounds(v),
}


# --- time parameters -------------------------------------------------------------------------


def _bad(field: str, message: str) -> ProblemError:
    return ProblemError(400, "Bad request", f"{field}: {message}", [FieldError(field, message)])


def parse_date(value: str | None, field: str) -> dt.date | None:
    """A world date, in the range event bodies accept."""
    if value is None:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
        if not FIRST_WORLD_DATE <= day <= LAST_WORLD_DATE:
            raise ValueError(value)
    except ValueError:
        raise _bad(field, f"must be a date YYYY-MM-DD {WORLD_DATE_RANGE}") from None
    return day


def parse_timestamp(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    found = _TIMESTAMP.fullmatch(value)
    if found is None:
        raise _bad(field, "must be an RFC 3339 timestamp with an offset, e.g. 2025-08-12T09:30:00Z")
    day, clock, zulu, sign, offset = found.groups()
    # Python keeps microseconds; finer digits cannot change which events were recorded by then.
    clock = re.sub(r"(\.\d{1,6})\d*", r"\1", clock)
    zone = "+00:00" if zulu else f"{'-' if sign == '-' else '+'}{offset}"
    try:
        return dt.datetime.fromisoformat(f"{day}T{clock}{zone}").astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise _bad(field, "is not a valid time between years 0001 and 9999") from None


async def _now(request: Request[Any, Any, Any], min_position: int | None) -> dt.datetime:
    """The log's clock; 422 for a `min_position` past the log's head."""
    log = log_of(request)
    if min_position is not None and min_position > (head := await in_thread(log.head)):
        raise beyond_head(min_position, head)
    return log.clock().astimezone(dt.UTC)


async def moment(
    request: Request[Any, Any, Any], as_of: str | None, known_at: str | None, min_position: int | None
) -> tuple[dt.date, dt.datetime]:
    day, at = parse_date(as_of, "as_of"), parse_timestamp(known_at, "known_at")
    now = await _now(request, min_position)
    return day or now.date(), at or now


# --- reading the state -----------------------------------------------------------------------


def time_limit(request: Request[Any, Any, Any]) -> TimeLimit:
    """How long this request's answer may compute from now (PARLEY_QUERY_TIMEOUT); past it, a 503."""
    return TimeLimit.starting_now(request.app.state.settings.query_timeout)


def _position(log: ParleyLog, state: State, known_at: dt.datetime) -> int:
    versions = [r.originator_version for r in state.records if r.recorded_at <= known_at]
    if not versions:
        return 0
    found, _ = log.stream(state.negotiation_id or "", after_version=max(versions) - 1, limit=1)
    return found[0].position


def _state(
    states: LiveStates, log: ParleyLog, negotiation_id: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None,
    limit: TimeLimit,
) -> StateOut:
    state = states.state(negotiation_id, limit)
    seen = view(state, as_of, known_at, limit)
    parts: dict[str, Any] = {}
    for part, build in PARTS.items():
        limit.check()
        parts[part] = build(seen, legal_basis)
    answer = StateOut(
        as_of=as_of, known_at=known_at, position=_position(log, state, known_at), coverage=coverage(seen), **parts
    )
    limit.check()
    sources, corroboration = _sourced(state, log, msgspec.to_builtins(answer))
    return msgspec.structs.replace(answer, sources=sources, corroboration=corroboration)


def _part(
    states: LiveStates, log: ParleyLog, negotiation_id: str, part: str, as_of: dt.date, known_at: dt.datetime,
    legal_basis: str | None, limit: TimeLimit,
) -> dict[str, Any]:
    state = states.state(negotiation_id, limit)
    seen = view(state, as_of, known_at, limit)
    value = PARTS[part](seen, legal_basis)
    limit.check()
    sources, corroboration = _sourced(state, log, {part: msgspec.to_builtins(value)})
    return {
        "as_of": as_of,
        "known_at": known_at,
        "position": _position(log, state, known_at),
        "coverage": coverage(seen),
        part: value,
        "sources": sources,
        "corroboration": corroboration,
    }


def _sourced(
    state: State, log: ParleyLog, tree: dict[str, Any]
) -> tuple[dict[str, SourceOut | None], dict[str, Corroboration]]:
    """The sources behind every `because` of an answer, and how many independent ones each listed value has."""
    sources = sources_behind(state.records, because_ids(tree), SourceRegistry(log))
    corroboration: dict[str, Corroboration] = {}
    for part, value in _unwrapped(tree).items():
        listed = [(part, value)] if isinstance(value, dict) else [(f"{part}.{_stable_id(item)}", item) for item in value]
        for path, item in listed:
            if item.get("because"):
                corroboration[path] = independent(item["because"], sources)
    return sources, corroboration


# --- paging in world order -------------------------------------------------------------------


def world_key(occurred_on: dt.date, version: int) -> int:
    """A cursor value that sorts like (occurred_on, version); fits the cursor's 2**62 bound."""
    return occurred_on.toordinal() << 40 | version


def world_page(keyed: Iterable[tuple[int, Any]], after: int | None, limit: int) -> tuple[list[Any], str | None]:
    rest = [(key, item) for key, item in keyed if after is None or key > after]
    page = rest[:limit]
    return [item for _, item in page], (encode_cursor(page[-1][0]) if len(rest) > limit else None)


def _statements(
    states: LiveStates, negotiation_id: str, as_of: dt.date, known_at: dt.datetime,
    filters: dict[str, str | None], after: int | None, limit: int, time_limit: TimeLimit,
) -> Page:
    state = states.state(negotiation_id, time_limit)
    versions = {r.event_id: r.originator_version for r in state.records}
    said = statements(view(state, as_of, known_at, time_limit), **filters).statements
    items, more = world_page(((world_key(s.occurred_on, versions[s.event_id]), s) for s in said), after, limit)
    return Page(items=items, next=more)


def _appended(log: ParleyLog, negotiation_id: str, records: list[Recorded]) -> list[Appended]:
    """The stored envelopes (position, hash) of these records, in the order given."""
    if not records:
        return []
    wanted = {r.event_id for r in records}
    found, _ = log.stream(
        negotiation_id,
        after_version=min(r.originator_version for r in records) - 1,
        limit=len(wanted),
        match=lambda r: r.event_id in wanted,
    )
    by_id = {a.record.event_id: a for a in found}
    return [by_id[r.event_id] for r in records]


def _timeline(
    states: LiveStates, log: ParleyLog, negotiation_id: str, start: dt.date | None, end: dt.date | None,
    known_at: dt.datetime, after: int | None, limit: int, time_limit: TimeLimit,
) -> TimelinePage:
    state = states.state(negotiation_id, time_limit)
    known = [r for r in state.records if r.recorded_at <= known_at]
    time_limit.check()
    ids = {r.event_id for r in known}
    keyed = sorted(
        (
            (world_key(r.event.occurred_on, r.originator_version), r)
            for r in known
            if (start is None or r.event.occurred_on >= start) and (end is None or r.event.occurred_on <= end)
        ),
        key=lambda pair: pair[0],
    )
    page, more = world_page(keyed, after, limit)
    items = with_corrections(log, _appended(log, negotiation_id, page))
    for item in items:
        # A correction recorded after known_at was not known then.
        for field in ("corrected_by", "retracted_by"):
            if field in item:
                item[field] = [i for i in item[field] if i in ids]
                if not item[field]:
                    del item[field]
    last = end or max((r.event.occurred_on for r in known), default=None)
    covered = coverage(view(state, last or dt.date.min, known_at, time_limit))
    return TimelinePage(items=items, next=more, coverage=covered)


# --- diffs -----------------------------------------------------------------------------------

# Values about the reason or the distance to as_of, not the state itself.
_NOT_COMPARED = frozenset({"because", "days_remaining"})
_ID_FIELDS = ("measure_id", "deadline_id", "issue_id", "round_id", "truce_id", "event_id")


def _stable_id(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for field in _ID_FIELDS:
        if isinstance(item.get(field), str):
            if field == "measure_id" and "effective_from" in item:
                # a measure's pending changes are told apart by the day they start
                return f"{item[field]}@{item['effective_from']}"
            return item[field]
    if isinstance(item.get("imposed_by"), str) and isinstance(item.get("applies_to"), str):
        return f"{item['imposed_by']}->{item['applies_to']}"
    return None


def _by_id(value: Any) -> dict[str, Any] | None:
    """A list of objects as a map by their stable ids, or None when it has no such ids."""
    if not isinstance(value, list):
        return None
    keys = [_stable_id(item) for item in value]
    if None in keys or len(set(keys)) != len(keys):
        return None
    return dict(zip(keys, value, strict=True))  # type: ignore[arg-type]


_UNWRAP: dict[str, Callable[[Any], Any]] = {
    "truce": lambda truce: truce,
    "tariffs": lambda tariffs: tariffs["directions"],
    "measures": lambda measures: measures["measures"],
    "deadlines": lambda deadlines: [{**d, "passed": False} for d in deadlines["upcoming"]]
    + [{**d, "passed": True} for d in deadlines["passed"]],
    "issues": lambda issues: issues["issues"],
    "rounds": lambda rounds: rounds["rounds"],
}


def _unwrapped(tree: dict[str, Any]) -> dict[str, Any]:
    """The parts of a JSON answer without wrappers, so paths read `tariffs.US->CN...`, `deadlines.<id>...`."""
    return {part: unwrap(tree[part]) for part, unwrap in _UNWRAP.items() if part in tree}


def _diffable(state: StateOut) -> dict[str, Any]:
    return _unwrapped(msgspec.json.decode(msgspec.json.encode(state)))  # JSON's lists, not the views' tuples


def changes_between(
    before: Any, after: Any, path: str = "", why: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
) -> list[Change]:
    """Changes between two JSON trees; lists of identified objects compare by id, an object added or gone is one change."""
    before_by_id, after_by_id = _by_id(before), _by_id(after)
    if before_by_id is not None and after_by_id is not None:
        before, after = before_by_id, after_by_id
    if isinstance(before, dict) and isinstance(after, dict):
        why = (tuple(before.get("because", why[0])), tuple(after.get("because", why[1])))
        changes: list[Change] = []
        for key in dict.fromkeys([*before, *after]):
            if key not in _NOT_COMPARED:
                changes += changes_between(before.get(key), after.get(key), f"{path}.{key}" if path else key, why)
        return changes
    if before == after:
        return []
    whole = after if isinstance(after, dict) else before if isinstance(before, dict) else None
    because = tuple(whole.get("because", ())) if whole is not None else why[1] or why[0]
    return [Change(path=path, before=before, after=after, because=because)]


def _diff(
    states: LiveStates, log: ParleyLog, negotiation_id: str,
    before: tuple[dt.date, dt.datetime], after: tuple[dt.date, dt.datetime], legal_basis: str | None, limit: TimeLimit,
) -> DiffOut:
    first = _state(states, log, negotiation_id, *before, legal_basis, limit)
    second = _state(states, log, negotiation_id, *after, legal_basis, limit)
    limit.check()
    later = max((first, second), key=lambda answer: (answer.known_at, answer.as_of))
    return DiffOut(
        before=Moment(as_of=first.as_of, known_at=first.known_at, position=first.position),
        after=Moment(as_of=second.as_of, known_at=second.known_at, position=second.position),
        changes=changes_between(_diffable(first), _diffable(second)),
        coverage=later.coverage,
    )


Moments = tuple[tuple[dt.date | None, dt.datetime | None], tuple[dt.date | None, dt.datetime | None]]


def _diff_moments(given: dict[str, str | None]) -> Moments:
    """(from, to) at one known_at, or (known_from, known_to) on one as_of: exactly one pair; None is "now"."""
    world, belief = ("from", "to"), ("known_from", "known_to")
    by_world = any(given[f] is not None for f in world)
    by_belief = any(given[f] is not None for f in belief)
    if by_world == by_belief:
        raise ProblemError(
            400, "Bad request", "give from and to (world dates), or known_from and known_to (recording times), not both",
            [FieldError(f, "give exactly one pair: from and to, or known_from and known_to") for f in (*world, *belief)],
        )
    pair, alone = (world, "as_of") if by_world else (belief, "known_at")
    errors = [FieldError(f, "is required with " + " and ".join(pair)) for f in pair if given[f] is None]
    if given[alone] is not None:
        errors.append(FieldError(alone, f"does not apply with {' and '.join(pair)}"))
    if errors:
        raise ProblemError(400, "Bad request", "; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    if by_world:
        at = parse_timestamp(given["known_at"], "known_at")
        return (parse_date(given["from"], "from"), at), (parse_date(given["to"], "to"), at)
    day = parse_date(given["as_of"], "as_of")
    known_from, known_to = parse_timestamp(given["known_from"], "known_from"), parse_timestamp(given["known_to"], "known_to")
    return (day, known_from), (day, known_to)


_SOURCED = (
    "`sources` maps every event id in a `because` of the answer to the source the event was recorded with "
    "(name, id, kind, title, url, published_at, reliability A-F, credibility 1-6; null when it names none); "
    "a source naming a registered id (`/v1/sources`) takes the registry's kind, url and default reliability "
    "where the event leaves them out, and `registered` says whether the id is known. `corroboration` maps each "
    "listed value (`truce`, `tariffs.US->CN`, `measures.<id>`, `deadlines.<id>`, `issues.<id>`, `rounds.<id>`) "
    "to the independent sources among its `because` events (registered ids, else names, case-blind); two or "
    "more corroborate it."
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
        responses=problems(404, 422),
    )
    async def state(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
    ) -> StateOut:
        limit = time_limit(request)
        day, at = await moment(request, as_of, known_at, min_position)
        return await read(request, lambda r: _state(r.states, r.log, negotiation_id, day, at, legal_basis, limit), min_position)

    @get(
        "/{negotiation_id:str}/state/{part:str}",
        operation_id="getNegotiationStatePart",
        summary="One read model (truce, tariffs, measures, deadlines, issues, rounds) on as_of, as known at known_at",
        description=_SOURCED,
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def state_part(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        part: str,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
    ) -> dict[str, Any]:
        if part not in PARTS:
            allowed = ", ".join(PARTS)
            raise ProblemError(
                404, "Not found", f"no state part {part!r}; the parts are {allowed}",
                [FieldError("part", f"must be one of {allowed}")],
            )
        limit = time_limit(request)
        day, at = await moment(request, as_of, known_at, min_position)
        return await read(
            request, lambda r: _part(r.states, r.log, negotiation_id, part, day, at, legal_basis, limit), min_position
        )

    @get(
        "/{negotiation_id:str}/statements",
        operation_id="listNegotiationStatements",
        summary="Statements made by as_of, as known at known_at, in world order, filtered and cursor-paged",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def list_statements(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        speaker: Annotated[str | None, QueryParameter(description="The speaker's name, case-blind.")] = None,
        party: Annotated[str | None, QueryParameter(description="The speaker's party code.")] = None,
        topic: Annotated[str | None, QueryParameter(description="A topic, or an issue or measure id the statement is about.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> Page:
        after = decode_cursor(cursor)
        budget = time_limit(request)
        day, at = await moment(request, as_of, known_at, min_position)
        filters = {"speaker": speaker, "party": party, "topic": topic}
        return await read(
            request, lambda r: _statements(r.states, negotiation_id, day, at, filters, after, limit, budget), min_position
        )

    @get(
        "/{negotiation_id:str}/timeline",
        operation_id="getNegotiationTimeline",
        summary="The negotiation's events in world order (occurred_on, then position), as known at known_at, cursor-paged",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def timeline(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        from_: WorldFrom = None,
        to: WorldTo = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        limit: Limit = 100,
        cursor: str | None = None,
    ) -> TimelinePage:
        start, end = parse_date(from_, "from"), parse_date(to, "to")
        at = parse_timestamp(known_at, "known_at")
        after = decode_cursor(cursor)
        budget = time_limit(request)
        now = await _now(request, min_position)
        return await read(
            request,
            lambda r: _timeline(r.states, r.log, negotiation_id, start, end, at or now, after, limit, budget),
            min_position,
        )

    @get(
        "/{negotiation_id:str}/diff",
        operation_id="diffNegotiationState",
        summary="What changed in the state between two world dates, or in our belief between two recording times",
        description="Give `from` and `to` (world dates, at one `known_at`), or `known_from` and `known_to` "
        "(recording times, on one `as_of`). Each change names a path keyed by stable ids, "
        "its value before and after, and the events behind it.",
        guards=[require("reader")],
        responses=problems(404, 422),
    )
    async def diff(
        self,
        request: Request[Any, Any, Any],
        negotiation_id: str,
        from_: WorldFrom = None,
        to: WorldTo = None,
        known_from: Annotated[str | None, QueryParameter(description="RFC 3339 recording time before.")] = None,
        known_to: Annotated[str | None, QueryParameter(description="RFC 3339 recording time after.")] = None,
        as_of: AsOf = None,
        known_at: KnownAt = None,
        min_position: MinPosition = None,
        legal_basis: LegalBasis = None,
    ) -> DiffOut:
        given = {"from": from_, "to": to, "known_from": known_from, "known_to": known_to, "as_of": as_of, "known_at": known_at}
        moments = _diff_moments(given)
        limit = time_limit(request)
        now = await _now(request, min_position)
        before, after = ((day or now.date(), at or now) for day, at in moments)
        return await read(
            request, lambda r: _diff(r.states, r.log, negotiation_id, before, after, legal_basis, limit), min_position
        )
