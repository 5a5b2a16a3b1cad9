"""Which change to a measure applies on a day, and the `measures` read model (non-tariff measures)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from msgspec import Struct

from events.payloads import ALL_DESTINATIONS, ExemptionGranted, MeasureChanged, MeasureKind, MeasureStatus
from projections.deadlines import DeadlineBook, deadline_book
from projections import registry
from projections.index import Sorted, Version, sort_key
from projections.state import (
    ACTS,
    Fact,
    Scope,
    View,
    because_of,
    context_of,
    entity_step,
    memo,
    scope,
)
from projections.truce import truces

T = TypeVar("T")
_DAY = dt.timedelta(days=1)
_UNREAD = object()
# A measure with at most this many acts has its visible ones read in one go (see MeasureHistory.acts).
_READ_WHOLE = 8


@dataclasses.dataclass(eq=False)
class MeasureIndex:
    """One measure's changes, strongest claim last: all, the acts, those naming it, by end deadline."""

    changes: Sorted = dataclasses.field(default_factory=Sorted)
    acts: Sorted = dataclasses.field(default_factory=Sorted)
    named: Sorted = dataclasses.field(default_factory=Sorted)
    based: Sorted = dataclasses.field(default_factory=Sorted)
    scoped: Sorted = dataclasses.field(default_factory=Sorted)
    exemptions: Sorted = dataclasses.field(default_factory=Sorted)
    # suspensions with a fixed end: a rate on lapse may return the day after it
    lapsable: Sorted = dataclasses.field(default_factory=Sorted)
    until: dict[str, Sorted] = dataclasses.field(default_factory=dict)
    # deadlines a suspension with its own rate on lapse runs until (ever: a superset for any prefix)
    lapse_until: set[str] = dataclasses.field(default_factory=set)
    # whether any change (ever) is a tariff, and whether any is of another kind
    tariff: bool = False
    other: bool = False
    # the most days any act was announced ahead of its start: how far back one may still take over
    max_lead: dt.timedelta = dt.timedelta(0)


def _file(measure: MeasureIndex, version: Version) -> None:
    """File a change or an exemption under its measure, in each index its answers search."""
    fact = version.fact
    event = fact.event
    if isinstance(event, ExemptionGranted):
        measure.exemptions.add(sort_key(event.occurred_on, fact.version), version)
        return
    key = sort_key(event.occurred_on, fact.version, event.effective_from or event.occurred_on)
    measure.changes.add(key, version)
    if event.kind == "tariff":
        measure.tariff = True
    else:
        measure.other = True
    if event.status in ACTS:
        if event.effective_from is not None:
            measure.max_lead = max(measure.max_lead, event.effective_from - event.occurred_on)
        measure.acts.add(key, version)
        if event.status == "suspended" and event.effective_until is not None:
            measure.lapsable.add(key, version)
        if event.until_deadline:
            if event.lapse_rate_pct is not None:
                measure.lapse_until.add(event.until_deadline)
            until = measure.until.get(event.until_deadline)
            if until is None:
                until = measure.until[event.until_deadline] = Sorted()
            until.add(key, version)
    if event.name:
        measure.named.add(key, version)
    if event.legal_basis:
        measure.based.add(key, version)
    if event.scope:
        measure.scoped.add(key, version)


def starts_on(change: MeasureChanged) -> dt.date:
    return change.effective_from or change.occurred_on


def counts(status: MeasureStatus | None, rate_pct: float | None) -> bool:
    """Whether a measure is in force (a partial suspension keeps its remaining rate)."""
    return status == "in_force" or (status == "suspended" and rate_pct is not None)


class Exemption(Struct, frozen=True, kw_only=True):
    """Products taken out of a measure, since when (and until when)."""

    exemption_id: str
    description: str
    since: dt.date
    until: dt.date | None
    because: tuple[str, ...]


# (measure_id, deadline_id) -> a truce's rate on lapse for a measure it suspends until that deadline, and why
LapseRates = Mapping[tuple[str, str], tuple[float, tuple[str, ...]]]


def lapse_rates(view: View) -> LapseRates:
    """The rates on lapse the truces known on as_of name, per measure and the truce's deadline (the later truce wins)."""
    return memo(view, "lapse_rates", lambda: _lapse_rates(view))


def _lapse_rates(view: View) -> LapseRates:
    found: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
    for truce in truces(view):
        if truce.deadline_id is None:
            continue
        for suspension in truce.suspensions:
            if suspension.lapse_rate_pct is not None:
                found[(suspension.measure_id, truce.deadline_id)] = (suspension.lapse_rate_pct, truce.because)
    return found


def _lapse_of(change: MeasureChanged, lapses: LapseRates) -> tuple[float, tuple[str, ...]] | None:
    """The rate a suspension brings back when it runs out: its own, else the one its truce names; None: none named."""
    if change.status != "suspended":
        return None
    if change.lapse_rate_pct is not None:
        return change.lapse_rate_pct, ()
    if change.until_deadline is not None:
        return lapses.get((change.measure_id, change.until_deadline))
    return None


class _Walk:
    """A lazy descending walk, remembered: several rulings over one history read it once."""

    __slots__ = ("_seen", "_source")

    def __init__(self, source: Iterator[Fact[MeasureChanged]]) -> None:
        self._source = source
        self._seen: list[Fact[MeasureChanged]] = []

    def __iter__(self) -> Iterator[Fact[MeasureChanged]]:
        i = 0
        while True:
            if i == len(self._seen):
                found = next(self._source, None)
                if found is None:
                    return
                self._seen.append(found)
            yield self._seen[i]
            i += 1


class MeasureHistory:
    """The known changes to one measure, strongest claim first (announced latest, starting latest, recorded latest).

    Read lazily from the measure's index: a ruling walks down only as far as it must.
    """

    __slots__ = ("_acts", "_index", "_latest", "_legal_basis", "_name", "_scope", "_scope_given", "measure_id")

    def __init__(self, measure_id: str, index: MeasureIndex, seen: Scope, latest: Fact[MeasureChanged]) -> None:
        self.measure_id = measure_id
        self._index = index
        self._scope = seen
        self._latest = latest
        self._acts: _Walk | list[Fact[MeasureChanged]] | None = None
        self._legal_basis: object = _UNREAD
        self._name: object = _UNREAD
        self._scope_given: object = _UNREAD

    @property
    def scope_seen(self) -> Scope:
        """What the history is read through: the view's cut and as_of."""
        return self._scope

    @property
    def latest(self) -> MeasureChanged:
        return self._latest.event

    @property
    def latest_fact(self) -> Fact[MeasureChanged]:
        return self._latest

    @property
    def changes(self) -> tuple[Fact[MeasureChanged], ...]:
        """Every known change, strongest first (the whole history: read models do not need it)."""
        return tuple(self._scope.descending(self._index.changes))

    @property
    def acts(self) -> Iterable[Fact[MeasureChanged]]:
        if self._acts is None:
            # a short history is read whole at once: cheaper than a lazy walk, which pays per fact
            acts = self._index.acts
            self._acts = self._scope.all_descending(acts) if len(acts) <= _READ_WHOLE else _Walk(self._scope.descending(acts))
        return self._acts

    def _given(self, facet: Sorted, field: str) -> Any:
        found = self._scope.latest(facet)
        return getattr(found.event, field) if found is not None else None

    # Plain properties over a slot, not functools.cached_property: before Python 3.12 it takes a lock on every
    # first read, and every history is new per view, so every read in an answer was a first one.
    @property
    def legal_basis(self) -> str | None:
        if self._legal_basis is _UNREAD:
            self._legal_basis = self._given(self._index.based, "legal_basis")
        return self._legal_basis  # type: ignore[return-value]

    @property
    def name(self) -> str | None:
        if self._name is _UNREAD:
            self._name = self._given(self._index.named, "name")
        return self._name  # type: ignore[return-value]

    @property
    def scope(self) -> str | None:
        if self._scope_given is _UNREAD:
            self._scope_given = self._given(self._index.scoped, "scope")
        return self._scope_given  # type: ignore[return-value]

    @property
    def lead(self) -> dt.timedelta:
        """The most days any act was announced ahead of its start."""
        return self._index.max_lead

    def ends_with(self, deadline_id: str) -> bool:
        """Whether any known act runs until this deadline."""
        return self._scope.latest(self._index.until.get(deadline_id)) is not None

    def lapse_days(self, as_of: dt.date, book: DeadlineBook, lapses: LapseRates) -> set[dt.date]:
        """Days after as_of a suspension of this measure may lapse on: after each deadline a suspension with a rate on
        lapse runs until, after each fixed end of a suspension (a superset: the ruling on the day decides)."""
        days: set[dt.date] = set()
        if not lapses and not self._index.lapse_until and not len(self._index.lapsable):
            return days
        for deadline_id in self._index.until:
            if deadline_id not in self._index.lapse_until and (self.measure_id, deadline_id) not in lapses:
                continue
            due = book.due(deadline_id, as_of)
            if due is not None and due.lapses_on > as_of:
                days.add(due.lapses_on)
        for fact in self._scope.descending(self._index.lapsable) if len(self._index.lapsable) else ():
            end = _end(fact.event, book, as_of)[0]
            if end is not None and end + _DAY > as_of:
                days.add(max(starts_on(fact.event), end + _DAY))
        return days

    def exemptions(self, on: dt.date) -> tuple[Exemption, ...]:
        """The exemptions granted by as_of that apply on `on`, the latest grant of each exemption id."""
        if not len(self._index.exemptions):
            return ()
        latest: dict[str, Fact[ExemptionGranted]] = {}
        for fact in self._scope.world_order(self._index.exemptions):
            latest[fact.event.exemption_id] = fact
        found = []
        for exemption_id, fact in sorted(latest.items()):
            granted = fact.event
            since = granted.effective_from or granted.occurred_on
            if since <= on and (granted.effective_until is None or on <= granted.effective_until):
                found.append(
                    Exemption(
                        exemption_id=exemption_id,
                        description=granted.description,
                        since=since,
                        until=granted.effective_until,
                        because=fact.because,
                    )
                )
        return tuple(found)


class Ruling(Struct, frozen=True, kw_only=True):
    """What applies to a measure on a day: a change (or the rate its suspension brings back), since, until, and why."""

    change: Fact[MeasureChanged]
    status: MeasureStatus
    rate_pct: float | None
    # the first day the change (or the lapse) applies; `since` is later when a stronger change held it off
    starts: dt.date
    since: dt.date
    until: dt.date | None
    because: tuple[str, ...]
    # the change is a suspension that ran out: its rate on lapse applies
    lapsed: bool = False

    @property
    def in_force(self) -> bool:
        return counts(self.status, self.rate_pct)


def measure_histories(view: View, tariffs: bool) -> dict[str, MeasureHistory]:
    """The measures known on as_of that are (True) or are not (False) tariffs: the kind of their latest change."""
    return memo(view, f"measure_histories:{tariffs}", lambda: _measure_histories(view, tariffs))


def _measure_histories(view: View, tariffs: bool) -> dict[str, MeasureHistory]:
    seen = scope(view)
    found = {}
    for measure_id, index in sorted(seen.entities.of("measures").items()):
        # a measure none of whose changes (ever) is of the kind asked for is not read
        if not (index.tariff if tariffs else index.other):
            continue
        latest = seen.latest(index.changes)
        if latest is not None and (latest.event.kind == "tariff") == tariffs:
            found[measure_id] = MeasureHistory(measure_id, index, seen, latest)
    return found


def _end(change: MeasureChanged, book: DeadlineBook, on: dt.date) -> tuple[dt.date | None, tuple[str, ...]]:
    """The last day the change applies, as known on `on`; a suspension follows its deadline's extensions."""
    until = change.effective_until
    if not change.until_deadline:
        return until, ()
    due = book.due(change.until_deadline, on)
    if due is None:  # an unrecorded deadline cannot end the change
        return until, ()
    last = due.last_day
    return (min(until, last) if until is not None else last), due.because


def ruling(history: MeasureHistory, on: dt.date, book: DeadlineBook, lapses: LapseRates) -> Ruling | None:
    return _ruling(history, on, book, lapses)[0]


def _ruling(
    history: MeasureHistory, on: dt.date, book: DeadlineBook, lapses: LapseRates
) -> tuple[Ruling | None, list[tuple[dt.date, tuple[str, ...]]]]:
    """The ruling on `on`, or None and the acts that applied and ran out (their last day, and why)."""
    ended: list[tuple[dt.date, tuple[str, ...]]] = []
    for fact in history.acts:
        change = fact.event
        start = starts_on(change)
        if start > on:
            continue
        end, end_because = _end(change, book, on)
        if end is not None and end < on:
            lapse = _lapse_of(change, lapses)
            if lapse is None:
                if end >= start:
                    ended.append((end, (*fact.because, *end_because)))
                continue
            # A suspension that ran out brings back its rate on lapse, with the suspension's own precedence.
            rate, lapse_because = lapse
            lapsed = _held_off(fact, "in_force", rate, max(start, end + _DAY), None, (*end_because, *lapse_because), ended, True)
            return lapsed, ended
        return _held_off(fact, change.status, change.rate_pct, start, end, end_because, ended, False), ended
    return None, ended


def _held_off(
    fact: Fact[MeasureChanged], status: MeasureStatus, rate: float | None, start: dt.date, end: dt.date | None,
    why: tuple[str, ...], ended: list[tuple[dt.date, tuple[str, ...]]], lapsed: bool,
) -> Ruling:
    # A stronger change that ran out after this one started delays when this one took over.
    overtaken = [(e, b) for e, b in ended if e >= start] if ended else ()
    if not overtaken:  # the usual case, without the generators below
        return Ruling(
            change=fact, status=status, rate_pct=rate, starts=start, since=start, until=end,
            because=because_of(fact.because, why) if why else fact.because, lapsed=lapsed,
        )
    return Ruling(
        change=fact,
        status=status,
        rate_pct=rate,
        starts=start,
        since=max([start, *(e + _DAY for e, _ in overtaken)]),
        until=end,
        because=because_of(fact.because, why, *(b for _, b in overtaken)),
        lapsed=lapsed,
    )


class PendingChange(Struct, frozen=True, kw_only=True):
    measure_id: str
    status: MeasureStatus
    rate_pct: float | None
    effective_from: dt.date
    because: tuple[str, ...]
    # when the change was announced
    announced_on: dt.date | None = None


def pending_changes(
    history: MeasureHistory, as_of: dt.date, book: DeadlineBook, lapses: LapseRates, current: Ruling | None
) -> tuple[PendingChange, ...]:
    """Scheduled changes that will apply on their first day (after `current`, the ruling on as_of); a rate replaced
    before its date is left out."""
    scheduled: list[PendingChange] = []
    for day in sorted(_scheduled_days(history, as_of, book, lapses)):
        upcoming = ruling(history, day, book, lapses)
        if upcoming is None or upcoming.starts != day:
            continue
        if current is None or (upcoming.change.event_id, upcoming.lapsed) != (current.change.event_id, current.lapsed):
            scheduled.append(
                PendingChange(
                    measure_id=history.measure_id,
                    status=upcoming.status,
                    rate_pct=upcoming.rate_pct,
                    effective_from=day,
                    because=upcoming.because,
                    announced_on=upcoming.change.occurred_on,
                )
            )
            current = upcoming
    return tuple(scheduled)


def _scheduled_days(history: MeasureHistory, as_of: dt.date, book: DeadlineBook, lapses: LapseRates) -> set[dt.date]:
    """The first days after as_of on which an act may take over (a superset of those that do).

    An act takes over on its first day d only if every stronger act that started by as_of has
    ended before d: the walk stops at one that never ends (a suspension with a rate on lapse
    never does: the rate it brings back stays), or once no weaker act can start late enough
    (none starts more than `max_lead` days after it was announced). A rate on lapse may take
    over the day after a suspension ends, however long ago it was announced: those days come
    from the measure's deadlines and its suspensions with a fixed end (`lapse_days`). An act's
    end does not move after as_of: the book holds no extension announced later.
    """
    days = history.lapse_days(as_of, book, lapses)
    horizon = as_of  # candidates must start after as_of and after every end seen so far
    lead = history.lead
    for fact in history.acts:
        if fact.occurred_on + lead <= horizon:
            break
        start = starts_on(fact.event)
        if start > as_of:
            if start > horizon:
                days.add(start)
            continue
        end = _end(fact.event, book, as_of)[0]
        if end is None or _lapse_of(fact.event, lapses) is not None:
            break
        horizon = max(horizon, end)
    return days


class Lifecycle(Struct, frozen=True):
    """Where a measure stands on a day: in force (or suspended, removed, invalidated) by a ruling, announced for a
    later date, threatened, or expired when everything that applied ran out."""

    status: MeasureStatus | None
    since: dt.date | None
    rate_pct: float | None
    until: dt.date | None
    because: tuple[str, ...]
    ruling: Ruling | None
    pending: tuple[PendingChange, ...]

    @property
    def in_force(self) -> bool:
        return self.ruling is not None and self.ruling.in_force


def lifecycle(history: MeasureHistory, on: dt.date, book: DeadlineBook, lapses: LapseRates) -> Lifecycle:
    applying, ended = _ruling(history, on, book, lapses)
    pending = pending_changes(history, on, book, lapses, applying)
    if applying is not None:
        return Lifecycle(applying.status, applying.since, applying.rate_pct, applying.until, applying.because, applying, pending)
    if pending:
        first = pending[0]
        return Lifecycle("announced", first.announced_on, first.rate_pct, None, first.because, None, pending)
    latest = history.latest_fact
    if latest.event.status not in ACTS:
        return Lifecycle(latest.event.status, latest.occurred_on, latest.event.rate_pct, None, latest.because, None, pending)
    if ended:
        end, because = max(ended, key=lambda pair: pair[0])
        return Lifecycle("expired", end + _DAY, None, None, because, None, pending)
    return Lifecycle(None, None, None, None, latest.because, None, pending)


class MeasureView(Struct, frozen=True, kw_only=True):
    measure_id: str
    kind: MeasureKind
    name: str | None
    imposed_by: str
    # a party code, or ALL: every destination
    applies_to: str
    all_destinations: bool
    legal_basis: str | None
    scope: str | None
    # threatened, announced (its first date is after as_of), in_force, suspended, removed, expired, invalidated;
    # None: nothing known applies (an act that never took effect)
    status: MeasureStatus | None
    in_force: bool
    rate_pct: float | None
    since: dt.date | None
    until: dt.date | None
    until_deadline: str | None
    # a suspension's rate when it lapses, and the points it suspends
    lapse_rate_pct: float | None
    suspended_points: float | None
    exemptions: tuple[Exemption, ...]
    pending: tuple[PendingChange, ...]
    because: tuple[str, ...]


class MeasuresView(Struct, frozen=True, kw_only=True):
    measures: tuple[MeasureView, ...]


def suspension_terms(stage: Lifecycle, lapses: LapseRates) -> tuple[float | None, float | None]:
    """The rate on lapse and the points suspended of the suspension that applies, if one does."""
    applying = stage.ruling
    if applying is None or applying.lapsed or applying.status != "suspended":
        return None, None
    change = applying.change.event
    lapse = _lapse_of(change, lapses)
    return (lapse[0] if lapse else None), change.suspended_points


def measure_step(view: View, history: MeasureHistory, what: Hashable, build: Callable[[], T]) -> T:
    """`build()`, an answer about this measure on as_of, kept for every as_of it cannot differ on (`entity_step`).

    What a measure's answer reads: its own changes and exemptions, the deadline book and the truces
    (their rates on lapse, when they run out).
    """
    context = memo(view, "measure_context", lambda: context_of(history.scope_seen, "deadlines", "truce"))
    return entity_step(history.scope_seen, "measures", history.measure_id, build, context, what)


def _measure_view(history: MeasureHistory, view: View) -> MeasureView:
    book = deadline_book(view)
    lapses = lapse_rates(view)
    latest = history.latest
    stage = lifecycle(history, view.as_of, book, lapses)
    lapse_rate, points = suspension_terms(stage, lapses)
    return MeasureView(
        measure_id=history.measure_id,
        kind=latest.kind,
        name=history.name,
        imposed_by=latest.imposed_by,
        applies_to=latest.applies_to,
        all_destinations=latest.applies_to == ALL_DESTINATIONS,
        legal_basis=history.legal_basis,
        scope=history.scope,
        status=stage.status,
        in_force=stage.in_force,
        rate_pct=stage.rate_pct,
        since=stage.since,
        until=stage.until,
        until_deadline=stage.ruling.change.event.until_deadline if stage.ruling else None,
        lapse_rate_pct=lapse_rate,
        suspended_points=points,
        exemptions=history.exemptions(view.as_of),
        pending=stage.pending,
        because=stage.because,
    )


def measures(view: View) -> MeasuresView:
    return MeasuresView(measures=tuple(
        measure_step(view, history, "measures", functools.partial(_measure_view, history, view))
        for history in measure_histories(view, tariffs=False).values()
    ))


registry.register(registry.ReadModel(
    name="measures",
    folds=(MeasureChanged, ExemptionGranted),
    answer=lambda view, _: measures(view),
    answer_type=MeasuresView,
    entity=lambda event: event.measure_id,
    index=MeasureIndex,
    file=_file,
    id_field="measure_id",
    listed=lambda part: part["measures"],
    items=lambda part: part.measures,
    order=30,
))
