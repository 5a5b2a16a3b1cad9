"""The bitemporal fold behind every read model: `evolve` one event at a time, `view` at (as_of, known_at).

`State` keeps every recorded event, corrections and retractions beside their targets, indexed by
payload type. Time travel is a filter, never a rebuild: a view applies what was recorded by
`known_at` and what occurred by `as_of`, and each read model resolves only the types it needs;
folding by world dates lets backfills land on their own dates. A `State` sees a prefix of an
append-only ledger that later states share, so `evolve` is cheap and any older state (a
checkpoint) keeps its answers; evolving an old state again branches off a copy. A runner can
keep one state per negotiation current and answer any (as_of, known_at) from it.

Answers never scan a history. `evolve` also files every payload an event has had (as recorded,
then after each correction or retraction) as a `Version` under its entity (measure, deadline,
truce, issue, round), in `Sorted` indexes (projections/index.py) that any prefix of the ledger can
search by world date in O(log n). Recording times never go back in a log, so what was recorded
by `known_at` in a state of size n is a prefix, its `cut`, found by bisection; a view is then the
versions visible to the cut that occurred by `as_of`, and a read model walks, per entity, only the
few facts its answer needs, greatest (occurred_on, ...) first. A ledger whose recording times do
go back answers such a `known_at` from a fold of what it keeps (exact, not fast).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from events.payloads import (
    CoverageDeclared,
    Event,
    EventCorrected,
    EventRetracted,
    MeasureStatus,
    NegotiationOpened,
)
from events.records import Recorded
from projections import registry
from projections.index import NEVER, Sorted, Version, bound, sort_key

E = TypeVar("E", bound=Event)
T = TypeVar("T")

# How many events a fold works through between looks at its budget.
CHECK_EVERY = 256


class Budget(Protocol):
    """A request's time budget: the fold asks now and then and the budget raises when it has run out."""

    def check(self) -> None: ...


class _Unlimited:
    def check(self) -> None:
        return None


UNLIMITED: Budget = _Unlimited()

# Threats and announcements are not legal acts: they never displace the change that applies.
ACTS: frozenset[MeasureStatus] = frozenset({"in_force", "suspended", "removed", "expired", "invalidated"})

@dataclasses.dataclass(eq=False)
class Entities:
    """Per read model (projections/registry.py), per entity id, the index its versions are filed in."""

    models: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    coverage: Sorted = dataclasses.field(default_factory=Sorted)
    # where the record ends: the latest-dated fact of the world (not an amendment, a declaration or the opening)
    # live after each ledger position, so a prefix of the ledger reads its own answer in O(1)
    dated: _Latest = dataclasses.field(default_factory=lambda: _Latest())
    # per (read model, entity id) and per (read model, None): the days any version filed there names, give or take
    # a day, sorted; every version ever filed (a superset for any cut)
    days: dict[tuple[str, str | None], list[dt.date]] = dataclasses.field(default_factory=dict)
    # the same keys: the ledger positions at which a version was filed there or superseded, ascending
    changes: dict[tuple[str, str | None], list[int]] = dataclasses.field(default_factory=dict)
    # answers kept across views for the days they cannot differ on (see `entity_step`)
    steps: dict[Hashable, Any] = dataclasses.field(default_factory=dict)

    def of(self, model: str) -> dict[str, Any]:
        """Entity id -> index, for one read model (empty when it has filed nothing)."""
        found = self.models.get(model)
        if found is None:
            found = self.models[model] = {}
        return found


class _Latest:
    """The greatest live version among those added, after each ledger position; amending it rescans (rare)."""

    __slots__ = ("_best", "_keys", "_versions", "after")

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._versions: list[Version] = []
        self._best = -1
        self.after: list[Fact | None] = []

    def add(self, key: int, version: Version) -> None:
        self._keys.append(key)
        self._versions.append(version)
        if self._best < 0 or key > self._keys[self._best]:
            self._best = len(self._keys) - 1

    def settle(self, position: int) -> None:
        """Record the greatest live version once `position` is folded."""
        if self._best >= 0 and self._versions[self._best].superseded != NEVER:
            live = [i for i, v in enumerate(self._versions) if v.superseded == NEVER]
            self._keys = [self._keys[i] for i in live]
            self._versions = [self._versions[i] for i in live]
            self._best = max(range(len(live)), key=self._keys.__getitem__, default=-1)
        while len(self.after) <= position:
            self.after.append(self._versions[self._best].fact if self._best >= 0 else None)

    def at(self, cut: int) -> Fact | None:
        """The greatest version visible to `cut` (the records below it)."""
        return self.after[cut - 1] if cut else None


@dataclasses.dataclass(eq=False)
class _Original:
    """An event, its payload after the amendments so far, and its live versions (in its read model's group, dated)."""

    recorded: Recorded
    group: str | None
    event: Event | None
    because: tuple[str, ...]
    version: Version | None = None
    dated: Version | None = None


@dataclasses.dataclass(eq=False)
class _Ledger:
    records: list[Recorded] = dataclasses.field(default_factory=list)
    # event id -> its position in `records`
    where: dict[str, int] = dataclasses.field(default_factory=dict)
    # positions in `records`, ascending, so a state of size n reads the entries below n
    by_type: dict[type[Event], list[int]] = dataclasses.field(default_factory=dict)
    revisions: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # the latest recording time up to each position, and the positions recorded earlier than that
    high_water: list[dt.datetime] = dataclasses.field(default_factory=list)
    late: list[int] = dataclasses.field(default_factory=list)
    originals: dict[str, list[_Original]] = dataclasses.field(default_factory=dict)
    entities: Entities = dataclasses.field(default_factory=Entities)
    kept: dict[tuple[int, dt.datetime], State] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class State:
    """Everything recorded in one negotiation up to `version`; immutable from the outside."""

    negotiation_id: str | None = None
    version: int = 0
    size: int = 0
    _ledger: _Ledger = dataclasses.field(default_factory=_Ledger, repr=False, compare=False)

    @property
    def records(self) -> list[Recorded]:
        return self._ledger.records[: self.size]

    def recorded(self, event_id: str) -> Recorded | None:
        """The record of one event of this state, by its id (None: not in it)."""
        position = self._ledger.where.get(event_id)
        return self._ledger.records[position] if position is not None and position < self.size else None

    def last_version(self, known_at: dt.datetime) -> int:
        """The version of the last event recorded by known_at (0: none)."""
        ledger = self._ledger
        cut = bisect.bisect_right(ledger.high_water, known_at, 0, self.size)
        if not ledger.late or ledger.late[0] >= self.size:
            return ledger.records[cut - 1].originator_version if cut else 0
        # recording times went back: what was known at a time is not a prefix
        return max((r.originator_version for r in self.records if r.recorded_at <= known_at), default=0)


def evolve(state: State, recorded: Recorded) -> State:
    if state.negotiation_id not in (None, recorded.negotiation_id):
        raise ValueError(
            f"event {recorded.event_id} belongs to {recorded.negotiation_id!r}, not {state.negotiation_id!r}"
        )
    ledger = state._ledger
    if state.size != len(ledger.records):
        # Someone already evolved this state: branch off a private copy of its prefix.
        ledger = fold(state.records)._ledger
    position = len(ledger.records)
    _watch_clock(ledger, position, recorded.recorded_at)
    ledger.records.append(recorded)
    ledger.where[recorded.event_id] = position
    event = recorded.event
    if isinstance(event, (EventCorrected, EventRetracted)):
        ledger.revisions.setdefault(event.target, []).append(position)
    else:
        ledger.by_type.setdefault(type(event), []).append(position)
    _file(ledger, position, recorded)
    ledger.entities.dated.settle(position)
    return State(
        negotiation_id=recorded.negotiation_id,
        version=recorded.originator_version,
        size=position + 1,
        _ledger=ledger,
    )


def fold(records: Iterable[Recorded], state: State | None = None, time_limit: Budget = UNLIMITED) -> State:
    state = state or State()
    for count, recorded in enumerate(records, 1):
        state = evolve(state, recorded)
        if count % CHECK_EVERY == 0:
            time_limit.check()
    return state


def _watch_clock(ledger: _Ledger, position: int, recorded_at: dt.datetime) -> None:
    high = ledger.high_water[-1] if ledger.high_water else recorded_at
    try:
        is_late = recorded_at < high
    except TypeError:  # naive beside aware: compare at query time, as a scan would
        is_late = True
    if is_late:
        ledger.late.append(position)
        ledger.high_water.append(high)
    else:
        ledger.high_water.append(recorded_at)


# --- filing versions under their entities ----------------------------------------------------


def _file(ledger: _Ledger, position: int, recorded: Recorded) -> None:
    event = recorded.event
    if isinstance(event, (EventCorrected, EventRetracted)):
        for original in ledger.originals.get(event.target, ()):
            _amend(original, recorded)
            _publish(ledger, original, position)
        return
    original = _Original(recorded=recorded, group=_filed_under(type(event)), event=event, because=(recorded.event_id,))
    # Amendments recorded before their target (no log does that) still apply, as a scan applies them.
    for revision in ledger.revisions.get(recorded.event_id, ()):
        _amend(original, ledger.records[revision])
    ledger.originals.setdefault(recorded.event_id, []).append(original)
    _publish(ledger, original, position)


def _amend(original: _Original, amendment: Recorded) -> None:
    match amendment.event:
        case EventRetracted():
            original.event = None
        case EventCorrected(replacement=replacement):
            original.event = replacement
            original.because = (*original.because, amendment.event_id)


def _publish(ledger: _Ledger, original: _Original, position: int) -> None:
    """From `position` on, the original reads as its current payload (or not at all)."""
    entities = ledger.entities
    for old in (original.version, original.dated):
        if old is not None:
            old.superseded = position
    if original.version is not None and original.group is not None:
        _changed(entities, original.group, _entity_of(original.version.fact.event), position)
    original.version = original.dated = None
    event = original.event
    if event is None:
        return
    recorded = original.recorded
    fact = Fact(event_id=recorded.event_id, version=recorded.originator_version, event=event, because=original.because)
    kind = type(event)
    version = None
    if original.group is not None and _filed_under(kind) == original.group:
        original.version = version = Version(fact, position)
        _place(entities, version, original.group)
    dating = _DATING.get(kind, "dated")
    if dating is not None and dating == _DATING.get(type(recorded.event), "dated"):
        # one version serves both indexes: they are superseded together
        original.dated = version or Version(fact, position)
        getattr(entities, dating).add(sort_key(event.occurred_on, fact.version), original.dated)


# The index a fact counts in for coverage (default: a dated fact of the world): a declaration, or none for the
# amendments and the negotiation's opening (stamped when it was opened).
_DATING: dict[type[Event], str | None] = {
    CoverageDeclared: "coverage",
    EventCorrected: None,
    EventRetracted: None,
    NegotiationOpened: None,
}


def _filed_under(kind: type[Event]) -> str | None:
    """The read model an event of this type files under; a correction into another one hides the event."""
    found = _FILED_UNDER.get(kind, _UNKNOWN)
    if found is _UNKNOWN:
        model = registry.filed_under(kind)
        found = _FILED_UNDER[kind] = model.name if model is not None else None
    return found  # type: ignore[return-value]


_UNKNOWN = object()
_FILED_UNDER: dict[type[Event], object] = {}


def _entity_of(event: Event) -> str | None:
    model = registry.filed_under(type(event))
    return model.entity(event) if model is not None and model.entity is not None else None


def _changed(entities: Entities, name: str, entity_id: str | None, position: int) -> None:
    """Note that what the entity's (and its read model's) versions show changes from `position` on."""
    if entity_id is None:
        return
    for key in ((name, entity_id), (name, None)):
        changes = entities.changes.get(key)
        if changes is None:
            entities.changes[key] = [position]
        elif changes[-1] != position:
            changes.append(position)  # positions only grow: a reader bisecting meanwhile sees it or not


def _place(entities: Entities, version: Version, name: str) -> None:
    """File a version under its entity, as its read model says."""
    event = version.fact.event
    model = registry.filed_under(type(event))
    assert model is not None and model.entity is not None and model.name == name
    entity_id = model.entity(event)
    if entity_id is None:  # e.g. a demand about a measure, not an issue
        return
    _changed(entities, name, entity_id, version.created)
    index = entities.of(name)
    entity = index.get(entity_id)
    if entity is None:
        entity = index[entity_id] = model.index()
    if model.file is not None:
        model.file(entity, version)
    else:
        entity.add(sort_key(event.occurred_on, version.fact.version), version)
    _name_days(entities, name, entity_id, event)


# An answer compares as_of with days events name, or the day before or after one (a deadline's last day, the first
# day after a suspension): it can change only on those days or on the day after them.
_AROUND = tuple(dt.timedelta(days=n) for n in (-1, 0, 1, 2))
_DATE_FIELDS: dict[type[Event], tuple[str, ...]] = {}


def _date_fields(kind: type[Event]) -> tuple[str, ...]:
    found = _DATE_FIELDS.get(kind)
    if found is None:
        found = _DATE_FIELDS[kind] = tuple(
            f.name for f in msgspec.inspect.type_info(kind).fields if _names_a_day(f.type)  # type: ignore[union-attr]
        )
    return found


def _names_a_day(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.DateType):
        return True
    if isinstance(info, msgspec.inspect.Metadata):
        return _names_a_day(info.type)
    return isinstance(info, msgspec.inspect.UnionType) and any(_names_a_day(t) for t in info.types)


def _name_days(entities: Entities, name: str, entity_id: str, event: Event) -> None:
    named = {day for field in _date_fields(type(event)) if (day := getattr(event, field)) is not None}
    for key in ((name, entity_id), (name, None)):
        days = entities.days.get(key)
        if days is None:
            days = entities.days[key] = []
        for day in named:
            for offset in _AROUND:
                try:
                    around = day + offset
                except OverflowError:
                    continue
                at = bisect.bisect_left(days, around)
                if at == len(days) or days[at] != around:
                    days.insert(at, around)  # one C call: a reader bisecting meanwhile sees the list before or after


@dataclasses.dataclass(frozen=True)
class View:
    """A state seen on world date `as_of` with what was recorded by `known_at`."""

    state: State
    as_of: dt.date
    known_at: dt.datetime
    time_limit: Budget = dataclasses.field(default=UNLIMITED, repr=False, compare=False)
    # what read models of this view have already worked out (its scope, deadline book, histories)
    _memo: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)


def view(state: State, as_of: dt.date, known_at: dt.datetime, time_limit: Budget = UNLIMITED) -> View:
    return View(state=state, as_of=as_of, known_at=known_at, time_limit=time_limit)


def memo(view: View, name: str, compute: Callable[[], T]) -> T:
    """`compute()` once per view, so the read models of one request share their work."""
    try:
        return view._memo[name]  # type: ignore[no-any-return]
    except KeyError:
        value = view._memo[name] = compute()
        return value


# Step answers kept per ledger (per negotiation) at most, about 1 KiB each; past it they are all dropped and found again.
STEPS_KEPT = 8_192


def _up_to(values: list[Any] | None, bound: Any) -> Any:
    """The greatest of these sorted values that is at most `bound` (None: none is)."""
    if not values:
        return None
    at = bisect.bisect_right(values, bound)
    return values[at - 1] if at else None


def step_of(as_of: dt.date, *named: list[dt.date] | None) -> dt.date | None:
    """The last day on or before as_of among these lists of named days (None: before all of them)."""
    return max((day for days in named if (day := _up_to(days, as_of)) is not None), default=None)


# What an answer that reads whole read models depends on besides its entity (see `entity_step`).
Context = tuple[dt.date | None, tuple[int | None, ...]]


def context_of(seen: Scope, *models: str) -> Context:
    """For answers that read the whole of these read models: the last day on or before as_of any of their facts
    names, and the last position below the cut at which each changed."""
    days, changes = seen.entities.days, seen.entities.changes
    return (
        step_of(seen.as_of, *(days.get((model, None)) for model in models)),
        tuple(_up_to(changes.get((model, None)), seen.cut - 1) for model in models),
    )


def entity_step(
    seen: Scope, model: str, entity_id: str, build: Callable[[], T], context: Context | None = None, what: Hashable = None,
) -> T:
    """`build()`, an answer (`what`) about one entity of a read model, kept for every view that cannot differ.

    An answer that reads only the entity's own facts (and the whole read models of its `context`) and compares
    as_of only with days they name, give or take a day (`Entities.days`), is a step function of as_of: between
    two named days it cannot change. Its step is the last named day on or before as_of. The lists hold the days
    of every version ever filed, a superset of those a cut's facts name, so two days that share a step are never
    on two sides of a day that matters. Across cuts, it changes only where a version of the entity (or of a
    context model) was filed or superseded: the answer is kept under the last such position below the cut, so
    events about other entities leave it kept. Like the peer's table of measure periods, filled as periods are
    asked for.
    """
    entities = seen.entities
    step = _up_to(entities.days.get((model, entity_id)), seen.as_of)
    changed = _up_to(entities.changes.get((model, entity_id)), seen.cut - 1)
    if context is not None:
        floor, context_changed = context
        if floor is not None and (step is None or floor > step):
            step = floor
    else:
        context_changed = None
    steps = entities.steps
    key = (model, entity_id, what, changed, context_changed, step)
    found = steps.get(key, _NOT_KEPT)
    if found is _NOT_KEPT:
        found = build()
        if len(steps) >= STEPS_KEPT:
            steps.clear()
        steps[key] = found
    return found  # type: ignore[no-any-return]


def forget_steps(state: State) -> None:
    """Drop every answer its ledger keeps for steps (`entity_step`): the next answers fold every entity again."""
    state._ledger.entities.steps.clear()


_NOT_KEPT = object()
_ANY_DAY = bound(dt.date.max)


@dataclasses.dataclass(frozen=True)
class Scope:
    """The versions a view sees: visible to `cut` (recorded by known_at) and occurring by `as_of`."""

    entities: Entities
    cut: int
    as_of: dt.date
    limit: int

    def _limit(self, on: dt.date | None) -> int:
        return self.limit if on is None or on >= self.as_of else bound(on)

    def latest(self, index: Sorted | None, on: dt.date | None = None) -> Fact | None:
        """The greatest fact (the last in world order) occurring by as_of, or by `on` if earlier."""
        if index is None:
            return None
        found = index.first(self.cut, self.limit if on is None or on >= self.as_of else bound(on))
        return found.fact if found is not None else None

    def descending(self, index: Sorted | None) -> Iterator[Fact]:
        """The facts occurring by as_of, greatest first, lazily: callers read only what they need."""
        if index is not None:
            for found in index.below(self.cut, self.limit):
                yield found.fact

    def all_descending(self, index: Sorted) -> list[Fact]:
        """Every fact occurring by as_of, greatest first, at once."""
        return [found.fact for found in index.below(self.cut, self.limit)]

    def latest_known(self, index: Sorted) -> Fact | None:
        """The greatest fact visible to the cut, whenever it occurred: as_of does not apply."""
        found = index.first(self.cut, _ANY_DAY)
        return found.fact if found is not None else None

    def world_order(self, index: Sorted | None, on: dt.date | None = None) -> list[Fact]:
        """Every fact occurring by as_of (or by `on` if earlier), in world order."""
        if index is None:
            return []
        facts = [found.fact for found in index.below(self.cut, self._limit(on))]
        facts.reverse()
        return facts


def scope(view: View) -> Scope:
    return memo(view, "scope", lambda: _scope(view))


def _scope(view: View) -> Scope:
    state = view.state
    ledger = state._ledger
    cut = bisect.bisect_right(ledger.high_water, view.known_at, 0, state.size)
    late = ledger.late[bisect.bisect_left(ledger.late, cut) : bisect.bisect_left(ledger.late, state.size)]
    if any(ledger.records[p].recorded_at <= view.known_at for p in late):
        # A record stored with an earlier clock than one before it is known, one after it not:
        # what was known is no prefix. Index exactly what was known.
        kept = _kept(state, view.known_at, view.time_limit)
        return Scope(entities=kept._ledger.entities, cut=kept.size, as_of=view.as_of, limit=bound(view.as_of))
    return Scope(entities=ledger.entities, cut=cut, as_of=view.as_of, limit=bound(view.as_of))


def _kept(state: State, known_at: dt.datetime, time_limit: Budget) -> State:
    kept = state._ledger.kept
    found = kept.get((state.size, known_at))
    if found is None:
        found = fold((r for r in state.records if r.recorded_at <= known_at), time_limit=time_limit)
        while len(kept) >= 8:
            kept.pop(next(iter(kept)))
        kept[(state.size, known_at)] = found
    return found


@dataclasses.dataclass(frozen=True)
class Fact(Generic[E]):
    """An event as known at the view's `known_at`: its payload after corrections, and why."""

    event_id: str
    version: int
    event: E
    because: tuple[str, ...]

    @property
    def occurred_on(self) -> dt.date:
        return self.event.occurred_on


def because_of(*groups: Iterable[str]) -> tuple[str, ...]:
    """Event ids in first-seen order, each once."""
    return tuple(dict.fromkeys(groups[0] if len(groups) == 1 else itertools.chain.from_iterable(groups)))


def first_given(facts: Iterable[Fact], field: str) -> Any:
    """The first non-empty value of a payload field, so a report that leaves it out erases nothing."""
    for fact in facts:  # a loop, not next() over a generator: the lists are short and read per answer
        if value := getattr(fact.event, field):
            return value
    return None


def known(view: View, *types: type[E]) -> Iterator[Fact[E]]:
    """The facts of these types recorded by `known_at` and occurring by `as_of`, in stream order."""
    state = view.state
    ledger = state._ledger
    lists = [ledger.by_type.get(t, []) for t in types]
    for count, position in enumerate(heapq.merge(*lists), 1):
        if position >= state.size:
            break
        if count % CHECK_EVERY == 0:
            view.time_limit.check()
        recorded = ledger.records[position]
        if recorded.recorded_at > view.known_at:
            continue
        event: Event | None = recorded.event
        because = (recorded.event_id,)
        for revision in ledger.revisions.get(recorded.event_id, ()):
            if revision >= state.size:
                break
            amendment = ledger.records[revision]
            if amendment.recorded_at > view.known_at:
                continue
            match amendment.event:
                case EventRetracted():
                    event = None
                case EventCorrected(replacement=replacement):
                    event, because = replacement, (*because, amendment.event_id)
        if isinstance(event, types) and event.occurred_on <= view.as_of:
            yield Fact(event_id=recorded.event_id, version=recorded.originator_version, event=event, because=because)


def parties(view: View) -> tuple[str, ...]:
    """The negotiation's parties as known at known_at, whatever the as_of (every negotiation_opened, corrected)."""
    return memo(view, "parties", lambda: _parties(view))


def _parties(view: View) -> tuple[str, ...]:
    always = dataclasses.replace(view, as_of=dt.date.max, _memo={})
    return tuple(dict.fromkeys(p for fact in known(always, NegotiationOpened) for p in fact.event.parties))


def in_world_order(view: View, *types: type[E]) -> list[Fact[E]]:
    """`known` facts sorted by when they happened, then by the order they were recorded in."""
    return sorted(known(view, *types), key=lambda f: (f.occurred_on, f.version))
