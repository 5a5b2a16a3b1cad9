"""A negotiation's state at (as_of, known_at): read models, statements, the timeline in world order, diffs.

Plain functions over a read store; they raise domain errors (events/errors.py), which the HTTP layer maps once.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from events.application import ParleyLog
from events.errors import InvalidQueryError, PositionNotRecordedError, UnknownPartError
from projections import State, View, registry, statements, view
from projections.coverage import CoverageView, coverage
from projections.state import UNLIMITED, Budget
from service.queries.negotiations import stored, with_corrections
from service.queries.sources import (
    Corroboration,
    SourceOut,
    SourceRegistry,
    because_ids,
    encoded_because_ids,
    independence_keys,
    independent,
    sources_behind,
)
from service.queries.params import Page, parse_date, parse_timestamp, world_key, world_page
from service.queries.reasons import NOT_EXPANDED, BecauseEvent, because_events
from service.queries.store import ReadStore

# A state answer: when it is about, every part a read model registers (projections/registry.py), the
# sources behind its values. Built from the registry, so a new read model's part appears here by itself.
StateOut = msgspec.defstruct(
    "StateOut",
    [
        ("as_of", dt.date),
        ("known_at", dt.datetime),
        ("position", int),
        # how far the record is kept complete, and whether as_of is past it
        ("coverage", CoverageView),
        *((name, model.answer_type) for name, model in registry.parts().items()),
        # every event id in a `because` above -> its source and grades (None: the event names none)
        ("sources", dict[str, SourceOut | None], {}),
        # per listed value (`truce`, `tariffs.US->CN`, `deadlines.<id>`, ...): its independent sources
        ("corroboration", dict[str, Corroboration], {}),
        # with ?expand=because: every event id in a `because` above -> its date, type, one line and source; else null
        ("because_events", dict[str, BecauseEvent] | None, None),
    ],
    frozen=True,
    kw_only=True,
    module=__name__,
)


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
    # with ?expand=because: every event id in a change's `because` -> its date, type, one line and source; else null
    because_events: dict[str, BecauseEvent] | None = None


class TimelinePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Any]
    next: str | None
    # the record's coverage as known at known_at; beyond_record: `to` is past it
    coverage: CoverageView


# part name -> (view, legal_basis) -> the part, in answer order
PARTS: dict[str, Callable[[View, str | None], Any]] = {name: model.answer for name, model in registry.parts().items()}  # type: ignore[misc]
# part name -> the typed part -> its listed values (or the part itself, one value)
_ITEMS: dict[str, Callable[[Any], Any]] = {name: model.items for name, model in registry.parts().items()}


# --- time parameters ------------------------------------------------------------------------


def moment(log: ParleyLog, as_of: dt.date | None, known_at: dt.datetime | None, min_position: int | None) -> tuple[dt.date, dt.datetime]:
    """The (as_of, known_at) a query asks about: today and now by the log's clock where not given."""
    if min_position is not None and min_position > (head := log.head()):
        raise PositionNotRecordedError(min_position, head)
    now = log.clock().astimezone(dt.UTC)
    return as_of or now.date(), known_at or now


# --- reading the state -----------------------------------------------------------------------


def _position(log: ParleyLog, state: State, known_at: dt.datetime) -> int:
    last = state.last_version(known_at)
    if not last:
        return 0
    return log.placed(state.negotiation_id or "", [last])[last].position


class _Sourced(msgspec.Struct, frozen=True, kw_only=True):
    """What a state answer says about its parts: when it is about, and the sources behind them."""

    as_of: dt.date
    known_at: dt.datetime
    position: int
    coverage: CoverageView
    sources: dict[str, SourceOut | None]
    corroboration: dict[str, Corroboration]
    because_events: dict[str, BecauseEvent] | None


def _answered(
    store: ReadStore, negotiation_id: str, parts: tuple[str, ...], as_of: dt.date, known_at: dt.datetime,
    legal_basis: str | None, limit: Budget, expand: frozenset[str],
) -> tuple[dict[str, Any], dict[str, bytes], _Sourced]:
    """These parts on as_of, as known at known_at, each typed and encoded, and the sources behind them.

    The ids behind the answer (its coverage's, then its parts') are read off each part's encoded bytes (the bytes an
    HTTP answer is made of anyway), else walked in its Structs; corroboration reads each listed value's `because`
    off the Structs.
    """
    log = store.log
    state = store.states.state(negotiation_id, limit)
    seen = view(state, as_of, known_at, limit)
    values: dict[str, Any] = {}
    for part in parts:
        limit.check()
        values[part] = PARTS[part](seen, legal_basis)
    limit.check()
    encoded = {part: _ENCODE(value) for part, value in values.items()}
    covered = coverage(seen)
    ids = because_ids(covered)  # the answer's coverage comes first, and names its events too
    for part, value in values.items():
        found = encoded_because_ids(encoded[part])
        ids += found if found is not None else because_ids(value)
    graded_by = SourceRegistry(log)
    sources = sources_behind(state.recorded, ids, graded_by)
    keys = independence_keys(sources)
    corroboration = {path: independent(because, keys) for path, because in listed_reasons(values) if because}
    sourced = _Sourced(
        as_of=as_of, known_at=known_at, position=_position(log, state, known_at), coverage=covered, sources=sources,
        corroboration=corroboration, because_events=because_events(state, ids, graded_by, sources) if "because" in expand else None,
    )
    return values, encoded, sourced


_ENCODE = msgspec.json.Encoder().encode
_SOURCED_FIELDS = _Sourced.__struct_fields__
# A state answer with its parts already encoded (msgspec.Raw): the fields of StateOut, in its order.
_StateEncoded = msgspec.defstruct(
    "_StateEncoded", [(name, Any) for name in StateOut.__struct_fields__], frozen=True, kw_only=True, module=__name__,
)


def state_at(
    store: ReadStore, negotiation_id: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None, limit: Budget = UNLIMITED,
    expand: frozenset[str] = NOT_EXPANDED,
) -> StateOut:
    """Every read model on as_of, as known at known_at, with the sources behind each value (and, expanded, the events)."""
    values, _, sourced = _answered(store, negotiation_id, tuple(PARTS), as_of, known_at, legal_basis, limit, expand)
    return StateOut(**values, **{name: getattr(sourced, name) for name in _SOURCED_FIELDS})


def encoded_state_at(
    store: ReadStore, negotiation_id: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None, limit: Budget = UNLIMITED,
    expand: frozenset[str] = NOT_EXPANDED,
) -> msgspec.Raw:
    """`state_at`'s answer as JSON (what the HTTP route sends), its parts encoded once."""
    _, encoded, sourced = _answered(store, negotiation_id, tuple(PARTS), as_of, known_at, legal_basis, limit, expand)
    parts = {name: msgspec.Raw(body) for name, body in encoded.items()}
    return msgspec.Raw(_ENCODE(_StateEncoded(**parts, **{name: getattr(sourced, name) for name in _SOURCED_FIELDS})))


def part_at(
    store: ReadStore, negotiation_id: str, part: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None,
    limit: Budget = UNLIMITED, expand: frozenset[str] = NOT_EXPANDED,
) -> dict[str, Any]:
    """One read model on as_of, as known at known_at, shaped as StateOut; UnknownPartError names the parts."""
    return _part(store, negotiation_id, part, as_of, known_at, legal_basis, limit, expand, encoded=False)


def encoded_part_at(
    store: ReadStore, negotiation_id: str, part: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None,
    limit: Budget = UNLIMITED, expand: frozenset[str] = NOT_EXPANDED,
) -> dict[str, Any]:
    """`part_at`'s answer with the part already encoded (what the HTTP route sends)."""
    return _part(store, negotiation_id, part, as_of, known_at, legal_basis, limit, expand, encoded=True)


def _part(
    store: ReadStore, negotiation_id: str, part: str, as_of: dt.date, known_at: dt.datetime, legal_basis: str | None,
    limit: Budget, expand: frozenset[str], *, encoded: bool,
) -> dict[str, Any]:
    if part not in PARTS:
        raise UnknownPartError(part, tuple(PARTS))
    values, bodies, sourced = _answered(store, negotiation_id, (part,), as_of, known_at, legal_basis, limit, expand)
    head = {name: getattr(sourced, name) for name in ("as_of", "known_at", "position", "coverage")}
    tail = {name: getattr(sourced, name) for name in ("sources", "corroboration", "because_events")}
    return {**head, part: msgspec.Raw(bodies[part]) if encoded else values[part], **tail}


def listed_reasons(parts: dict[str, Any]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Each value the typed parts of a state answer list, with its path (`truce`, `tariffs.US->CN`, `deadlines.<id>`,
    the paths diffs give) and its `because`."""
    for part, value in parts.items():
        items = _ITEMS[part](value)
        if isinstance(items, msgspec.Struct):
            yield part, _listed_plan(type(items))[1](items)
            continue
        kind: type | None = None
        for item in items:
            if type(item) is not kind:  # the items of a list are usually of one type
                kind = type(item)
                ident, reasons = _listed_plan(kind)
            yield f"{part}.{ident(item)}", reasons(item)


@functools.cache
def _listed_plan(kind: type) -> tuple[Callable[[Any], str | None], Callable[[Any], tuple[str, ...]]]:
    """How to read the stable id and the `because` of a listed value of this type."""
    if not issubclass(kind, msgspec.Struct):
        return _stable_id, lambda item: tuple(item.get("because") or ()) if isinstance(item, dict) else ()
    field = _encoded_as(kind).get("because")
    return _struct_id, operator.attrgetter(field) if field is not None else (lambda _: ())


# --- paging in world order -------------------------------------------------------------------


def statements_page(
    store: ReadStore, negotiation_id: str, as_of: dt.date, known_at: dt.datetime,
    filters: dict[str, str | None], after: int | None, limit: int, time_limit: Budget = UNLIMITED,
) -> Page:
    """Statements made by as_of, as known at known_at, in world order, filtered, a page at a time."""
    state = store.states.state(negotiation_id, time_limit)
    versions = {r.event_id: r.originator_version for r in state.records}
    said = statements(view(state, as_of, known_at, time_limit), **filters).statements
    items, more = world_page(((world_key(s.occurred_on, versions[s.event_id]), s) for s in said), after, limit)
    return Page(items=items, next=more)


def timeline_page(
    store: ReadStore, negotiation_id: str, start: dt.date | None, end: dt.date | None,
    known_at: dt.datetime, after: int | None, limit: int, time_limit: Budget = UNLIMITED,
) -> TimelinePage:
    """The negotiation's events in world order, as known at known_at, a page at a time."""
    log = store.log
    state = store.states.state(negotiation_id, time_limit)
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
    items = with_corrections(log, stored(log, negotiation_id, page))
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
# Which field names an item's stable id, first match wins; a read model's own id field joins the list.
_ID_FIELDS = tuple(dict.fromkeys((
    "measure_id", "deadline_id", "issue_id", "round_id", "truce_id",
    *(m.id_field for m in registry.parts().values() if m.id_field), "event_id",
)))


def _stable_id(item: Any) -> str | None:
    """An item's stable id: of a JSON object, or of the Struct it is encoded from (by its fields' JSON names)."""
    if isinstance(item, msgspec.Struct):
        return _struct_id(item)
    if not isinstance(item, dict):
        return None
    return _id_from(_id_plan({key: key for key in item if isinstance(key, str)}), item.get)


def _struct_id(item: msgspec.Struct) -> str | None:
    return _id_from(_struct_id_plan(type(item)), item.__getattribute__)


_IdPlan = tuple[tuple[tuple[str, str], ...], str | None, tuple[str, str] | None]


def _id_from(plan: _IdPlan, get: Callable[[str], Any]) -> str | None:
    """The stable id an item's fields give, read with `get` as `plan` (`_id_plan`) says."""
    candidates, started, direction = plan
    for field, name in candidates:
        if isinstance(value := get(name), str):
            if field == "measure_id" and started is not None:
                # a measure's pending changes are told apart by the day they start
                return f"{value}@{get(started)}"
            return value
    if direction is not None:
        imposed_by, applies_to = get(direction[0]), get(direction[1])
        if isinstance(imposed_by, str) and isinstance(applies_to, str):
            return f"{imposed_by}->{applies_to}"
    return None


def _id_plan(names: dict[str, str]) -> _IdPlan:
    """From an item's fields (JSON name -> where to read it): its id fields in _ID_FIELDS order, its `effective_from`,
    and its (`imposed_by`, `applies_to`), each where it has them."""
    direction = (names["imposed_by"], names["applies_to"]) if "imposed_by" in names and "applies_to" in names else None
    return tuple((field, names[field]) for field in _ID_FIELDS if field in names), names.get("effective_from"), direction


@functools.cache
def _struct_id_plan(kind: type[msgspec.Struct]) -> _IdPlan:
    return _id_plan(_encoded_as(kind))


@functools.cache
def _encoded_as(kind: type[msgspec.Struct]) -> dict[str, str]:
    """A Struct's fields by the names they are encoded with."""
    return {field.encode_name: field.name for field in msgspec.structs.fields(kind)}


def _by_id(value: Any) -> dict[str, Any] | None:
    """A list of objects as a map by their stable ids, or None when it has no such ids."""
    if not isinstance(value, list):
        return None
    keys = [_stable_id(item) for item in value]
    if None in keys or len(set(keys)) != len(keys):
        return None
    return dict(zip(keys, value, strict=True))  # type: ignore[arg-type]


_UNWRAP: dict[str, Callable[[Any], Any]] = {name: model.listed for name, model in registry.parts().items()}


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


def diff_between(
    store: ReadStore, negotiation_id: str,
    before: tuple[dt.date, dt.datetime], after: tuple[dt.date, dt.datetime], legal_basis: str | None, limit: Budget = UNLIMITED,
    expand: frozenset[str] = NOT_EXPANDED,
) -> DiffOut:
    """What changed between two moments (world dates, or recording times), keyed by stable ids, and why."""
    first = state_at(store, negotiation_id, *before, legal_basis, limit)
    second = state_at(store, negotiation_id, *after, legal_basis, limit)
    limit.check()
    later = max((first, second), key=lambda answer: (answer.known_at, answer.as_of))
    changes = changes_between(_diffable(first), _diffable(second))
    expanded = None
    if "because" in expand:
        sources = {**first.sources, **second.sources}
        expanded = because_events(
            store.states.state(negotiation_id, limit), because_ids(msgspec.to_builtins(changes)), SourceRegistry(store.log), sources
        )
    return DiffOut(
        before=Moment(as_of=first.as_of, known_at=first.known_at, position=first.position),
        after=Moment(as_of=second.as_of, known_at=second.known_at, position=second.position),
        changes=changes,
        coverage=later.coverage,
        because_events=expanded,
    )


Moments = tuple[tuple[dt.date | None, dt.datetime | None], tuple[dt.date | None, dt.datetime | None]]


def diff_moments(given: dict[str, str | None]) -> Moments:
    """(from, to) at one known_at, or (known_from, known_to) on one as_of: exactly one pair; None is "now"."""
    world, belief = ("from", "to"), ("known_from", "known_to")
    by_world = any(given[f] is not None for f in world)
    by_belief = any(given[f] is not None for f in belief)
    if by_world == by_belief:
        reason = "give exactly one pair: from and to, or known_from and known_to"
        raise InvalidQueryError(
            "from", reason, "give from and to (world dates), or known_from and known_to (recording times), not both",
            fields=tuple((f, reason) for f in (*world, *belief)),
        )
    pair, alone = (world, "as_of") if by_world else (belief, "known_at")
    errors = [(f, "is required with " + " and ".join(pair)) for f in pair if given[f] is None]
    if given[alone] is not None:
        errors.append((alone, f"does not apply with {' and '.join(pair)}"))
    if errors:
        raise InvalidQueryError(errors[0][0], errors[0][1], "; ".join(f"{f}: {m}" for f, m in errors), fields=tuple(errors))
    if by_world:
        at = parse_timestamp(given["known_at"], "known_at")
        return (parse_date(given["from"], "from"), at), (parse_date(given["to"], "to"), at)
    day = parse_date(given["as_of"], "as_of")
    known_from, known_to = parse_timestamp(given["known_from"], "known_from"), parse_timestamp(given["known_to"], "known_to")
    return (day, known_from), (day, known_to)


