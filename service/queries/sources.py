"""The source registry, and the sources and corroboration behind the values of a state answer."""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal

import msgspec
from eventsourcing.persistence import IntegrityError

from events.application import ParleyLog
from events.errors import SourceExistsError, SourceNotFoundError
from events.payloads import EventCorrected, Name, Reliability, Slug, Source, Url, check_values
from events.records import Recorded
from service.queries.params import Page, encode_name_cursor, peek
from service.queries.store import ReadStore

SourceKind = Literal["official", "wire", "newspaper", "analyst", "social", "other"]


class SourceCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: Slug
    name: Name
    kind: SourceKind
    url: Url | None = None
    reliability: Annotated[Reliability | None, msgspec.Meta(description="Default Admiralty reliability, A (reliable) to F.")] = None

    def __post_init__(self) -> None:
        check_values(self)  # PostgreSQL text refuses NUL: a 422 naming the field, not a store error


class SourceRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    kind: str
    url: str | None
    reliability: str | None
    created_at: str
    created_by: str


class SourceOut(msgspec.Struct, frozen=True, kw_only=True):
    """A report's source as stated on the event, completed from the registry where it names a registered id."""

    name: str
    id: str | None
    kind: str | None
    title: str | None
    url: str | None
    published_at: dt.date | None
    reliability: str | None
    credibility: int | None
    # None: the event names no source id; False: it names one the registry does not know
    registered: bool | None


class Corroboration(msgspec.Struct, frozen=True, kw_only=True):
    # independent sources: registered ids, else names (case-blind)
    sources: list[str]
    corroborated: bool


_COLUMNS = "id, name, kind, url, reliability, created_at, created_by"


class SourceRegistry:
    """Sources in the parley_sources table of the event store's database."""

    def __init__(self, log: ParleyLog) -> None:
        self._run = log.run
        self._clock = log.clock

    def create(self, body: SourceCreate, *, created_by: str) -> SourceRecord:
        if self._run("SELECT id FROM parley_sources WHERE id = ?", (body.id,)):
            raise SourceExistsError(body.id)
        record = SourceRecord(
            id=body.id, name=body.name, kind=body.kind, url=body.url, reliability=body.reliability,
            created_at=self._clock().astimezone(dt.UTC).isoformat().replace("+00:00", "Z"), created_by=created_by,
        )
        try:
            self._run(
                f"INSERT INTO parley_sources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.name, record.kind, record.url, record.reliability, record.created_at, created_by),
                commit=True,
            )
        except IntegrityError as error:  # the primary key: a concurrent create won
            raise SourceExistsError(body.id) from error
        return record

    def list(self, *, after: str = "", limit: int = 100) -> list[SourceRecord]:
        rows = self._run(f"SELECT {_COLUMNS} FROM parley_sources WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [SourceRecord(**row) for row in rows]

    def get(self, source_id: str) -> SourceRecord:
        rows = self._run(f"SELECT {_COLUMNS} FROM parley_sources WHERE id = ?", (source_id,))
        if not rows:
            raise SourceNotFoundError(source_id)
        return SourceRecord(**rows[0])

    def known(self, ids: Iterable[str]) -> dict[str, SourceRecord]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self._run(f"SELECT {_COLUMNS} FROM parley_sources WHERE id IN ({', '.join('?' * len(wanted))})", wanted)
        return {row["id"]: SourceRecord(**row) for row in rows}


# --- the sources behind an answer ------------------------------------------------------------


_CONTAINERS = (dict, list, tuple, msgspec.Struct)
# Types whose values never hold a `because`: a Struct field that can hold only these is not visited.
_SCALARS = (
    msgspec.inspect.StrType, msgspec.inspect.IntType, msgspec.inspect.FloatType, msgspec.inspect.BoolType,
    msgspec.inspect.NoneType, msgspec.inspect.DateType, msgspec.inspect.DateTimeType, msgspec.inspect.LiteralType,
    msgspec.inspect.EnumType,
)


class _Ids(tuple[Any, ...]):
    """A `because` list met on the walk: its ids come out where it stands."""


def _may_hold(info: msgspec.inspect.Type, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a value of this type can hold a `because` list anywhere (True where the type does not say)."""
    if isinstance(info, _SCALARS):
        return False
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_may_hold(member, seen) for member in info.types)
    if isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType, msgspec.inspect.VarTupleType)):
        return _may_hold(info.item_type, seen)
    if isinstance(info, msgspec.inspect.TupleType):
        return any(_may_hold(item, seen) for item in info.item_types)
    if isinstance(info, msgspec.inspect.DictType):
        return _may_hold(info.key_type, seen) or _may_hold(info.value_type, seen)
    if isinstance(info, msgspec.inspect.StructType):
        if info.cls in seen:
            return True
        return any(f.encode_name == "because" or _may_hold(f.type, seen | {info.cls}) for f in info.fields)
    return True


# How a Struct field is walked: a `because` of strings (its ids are taken as they are), any other `because`
# (its strings are taken), a tuple or list of Structs (each is walked), anything else that may hold one.
_IDS, _BECAUSE, _STRUCTS, _ANY = range(4)


def _sequence_of(info: msgspec.inspect.Type, item: type[msgspec.inspect.Type]) -> bool:
    """Whether the type is a tuple or list of `item` (StrType, StructType, ...)."""
    return isinstance(info, (msgspec.inspect.VarTupleType, msgspec.inspect.ListType)) and isinstance(info.item_type, item)


@functools.cache
def _walked_fields(kind: type[msgspec.Struct]) -> tuple[Callable[[Any], tuple[Any, ...]], tuple[int, ...]]:
    """A Struct's fields that may hold a `because`, at any depth, in encoding order: one getter of all their values,
    and how each is walked."""
    try:
        fields = msgspec.inspect.type_info(kind).fields  # type: ignore[attr-defined]
    except (NameError, TypeError):  # an annotation that does not resolve: visit every field
        plan = [(f.name, _BECAUSE if f.encode_name == "because" else _ANY) for f in msgspec.structs.fields(kind)]
    else:
        plan = [
            (f.name, (_IDS if _sequence_of(f.type, msgspec.inspect.StrType) else _BECAUSE) if f.encode_name == "because"
             else _STRUCTS if _sequence_of(f.type, msgspec.inspect.StructType) else _ANY)
            for f in fields
            if f.encode_name == "because" or _may_hold(f.type)
        ]
    names = [name for name, _ in plan]
    if len(names) > 1:
        return operator.attrgetter(*names), tuple(how for _, how in plan)
    # attrgetter of one name gives the value itself, not a tuple of it
    return (lambda node: tuple(getattr(node, name) for name in names)), tuple(how for _, how in plan)


def because_ids(tree: Any) -> list[str]:
    """Every event id under a `because` key anywhere in an answer, in document order: a JSON tree, or the msgspec
    Structs it is encoded from (then only the fields whose types can hold one are visited).

    A JSON tree is walked with its own stack that never visits a scalar: a /state answer is hundreds of nested
    values, and a generator per value cost more than the rest of the sources map. Structs nest only as deep as
    their types do, so they are walked by recursion, which costs less again.
    """
    if isinstance(tree, msgspec.Struct):
        return _struct_ids(tree, [])
    found: list[str] = []
    stack = [tree] if isinstance(tree, _CONTAINERS) else []
    while stack:
        node = stack.pop()
        if type(node) is _Ids:
            found += [i for i in node if isinstance(i, str)]
            continue
        if isinstance(node, msgspec.Struct):
            _struct_ids(node, found)
            continue
        if isinstance(node, dict):
            children = [
                _Ids(value) if key == "because" and not isinstance(value, (dict, msgspec.Struct)) else value
                for key, value in node.items()
                if isinstance(value, _CONTAINERS)
            ]
        else:
            children = [item for item in node if isinstance(item, _CONTAINERS)]
        children.reverse()
        stack += children
    return found


def _struct_ids(node: msgspec.Struct, found: list[str]) -> list[str]:
    getter, walks = _walked_fields(type(node))
    for value, how in zip(getter(node), walks):
        if how == _IDS:
            if value:
                found += value
        elif how == _STRUCTS:
            for item in value or ():
                _struct_ids(item, found)
        elif how == _BECAUSE and isinstance(value, (list, tuple)):
            found += [i for i in value if isinstance(i, str)]
        elif isinstance(value, msgspec.Struct):
            _struct_ids(value, found)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, msgspec.Struct):
                    _struct_ids(item, found)
                elif isinstance(item, _CONTAINERS):
                    found += because_ids(item)
        elif isinstance(value, dict):
            found += because_ids(value)
    return found


# A `because` key with a non-empty list, as msgspec encodes it (no spaces), up to the first `]`; a key whose name
# only ends in `"because` has a backslash before that quote.
_ENCODED_BECAUSE = re.compile(rb'"because":\[([^\]]+)\]')
_ESCAPED_BECAUSE = b'\\"because":['
_IDS_DECODER = msgspec.json.Decoder(list[str])


def encoded_because_ids(encoded: bytes) -> list[str] | None:
    """Every event id under a `because` key of an encoded JSON answer, in document order, read off the bytes; None
    when a `because` there is not a plain list of strings (walk the value with `because_ids` then).

    A quote inside a string is escaped, so `"because":[` not after a backslash is always a key. Each list is read up
    to its first `]` and the lists are decoded as one, joined by newlines: a list cut inside a string (at a `]` in
    it) leaves that newline inside a string, where JSON forbids it, and a list holding anything but strings (a
    number, a map, a nested list) does not decode as strings; either way the answer is None, so the ids found are
    exactly those `because_ids` finds in the decoded tree.
    """
    lists = _ENCODED_BECAUSE.findall(encoded)
    if not lists:
        return []
    if _ESCAPED_BECAUSE in encoded:
        return None
    try:
        return _IDS_DECODER.decode(b"[" + b",\n".join(lists) + b"]")
    except msgspec.DecodeError:
        return None


def _stated(recorded: Recorded) -> Source | None:
    event = recorded.event
    if isinstance(event, EventCorrected):
        return event.source or event.replacement.source
    return event.source


def _graded(source: Source, registered: dict[str, SourceRecord]) -> SourceOut:
    entry = registered.get(source.id) if source.id else None
    return SourceOut(
        name=source.name,
        id=source.id,
        kind=source.kind or (entry.kind if entry else None),
        title=source.title,
        url=source.url or (entry.url if entry else None),
        published_at=source.published_at,
        reliability=source.reliability or (entry.reliability if entry else None),
        credibility=source.credibility,
        registered=None if source.id is None else entry is not None,
    )


def sources_behind(
    recorded: Callable[[str], Recorded | None], event_ids: Iterable[str], registry: SourceRegistry
) -> dict[str, SourceOut | None]:
    """Each event id's source as it was recorded (None: the event names none), graded from the registry.

    `recorded` finds an event's record by its id (None: unknown).
    """
    stated: dict[str, Source | None] = {}  # each id once, in order; None: unknown, or the event names no source
    for event_id in event_ids:
        if event_id not in stated:
            found = recorded(event_id)
            stated[event_id] = None if found is None else _stated(found)
    named = [s.id for s in stated.values() if s is not None and s.id]
    registered = registry.known(named) if named else {}
    return {i: None if s is None else _graded(s, registered) for i, s in stated.items()}


def independence_keys(sources: dict[str, SourceOut | None]) -> dict[str, str]:
    """Each sourced event id's source as independence counts it: its registered id, else its name, case-blind."""
    return {i: s.id or s.name.casefold() for i, s in sources.items() if s is not None}


def independent(event_ids: Iterable[str], keys: dict[str, str]) -> Corroboration:
    """The distinct sources among these events (`keys`: independence_keys); two or more corroborate the value they
    explain."""
    found = list(dict.fromkeys([keys[i] for i in event_ids if i in keys]))
    return Corroboration(sources=found, corroborated=len(found) >= 2)


def sources_page(store: ReadStore, after: str, limit: int) -> Page:
    """Registered sources by id after `after`, a page at a time."""
    found = SourceRegistry(store.log).list(after=after, limit=limit + 1)
    return Page(*peek(found, limit, lambda source: encode_name_cursor(source.id)))


def source(store: ReadStore, source_id: str) -> SourceRecord:
    """One registered source; SourceNotFoundError when there is none."""
    return SourceRegistry(store.log).get(source_id)
