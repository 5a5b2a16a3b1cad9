"""Which change to a measure applies on a day, and the `measures` read model (non-tariff measures)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from typing import Any

from msgspec import Struct

from events.payloads import MeasureChanged, MeasureKind, MeasureStatus
from projections.deadlines import DeadlineBook, deadline_book
from projections.index import Sorted
from projections.state import (
    ACTS,
    Fact,
    MeasureIndex,
    Scope,
    View,
    because_of,
    memo,
    scope,
)

_DAY = dt.timedelta(days=1)


def starts_on(change: MeasureChanged) -> dt.date:
    return change.effective_from or change.occurred_on


def counts(change: MeasureChanged) -> bool:
    """Whether the change puts the measure in force (a partial suspension keeps its remaining rate)."""
    return change.status == "in_force" or (change.status == "suspended" and change.rate_pct is not None)


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

    def __init__(self, measure_id: str, index: MeasureIndex, seen: Scope, latest: Fact[MeasureChanged]) -> None:
        self.measure_id = measure_id
        self._index = index
        self._scope = seen
        self._latest = latest
        self._acts: _Walk | None = None

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
            self._acts = _Walk(self._scope.descending(self._index.acts))
        return self._acts

    def _given(self, facet: Sorted, field: str) -> Any:
        found = self._scope.latest(facet)
        return getattr(found.event, field) if found is not None else None

    @functools.cached_property
    def legal_basis(self) -> str | None:
        return self._given(self._index.based, "legal_basis")  # type: ignore[no-any-return]

    @functools.cached_property
    def name(self) -> str | None:
        return self._given(self._index.named, "name")  # type: ignore[no-any-return]

    @functools.cached_property
    def scope(self) -> str | None:
        return self._given(self._index.scoped, "scope")  # type: ignore[no-any-return]

    @property
    def max_lead(self) -> int:
        return self._index.max_lead

    def ends_with(self, deadline_id: str) -> bool:
        """Whether any known act runs until this deadline."""
        return self._scope.latest(self._index.until.get(deadline_id)) is not None


@dataclasses.dataclass(frozen=True)
class Ruling:
    """The change that applies to a measure on a day, since when, until when, and why."""

    change: Fact[MeasureChanged]
    since: dt.date
    until: dt.date | None
    because: tuple[str, ...]


def measure_histories(view: View) -> dict[str, MeasureHistory]:
    return memo(view, "measure_histories", lambda: _measure_histories(view))


def _measure_histories(view: View) -> dict[str, MeasureHistory]:
    seen = scope(view)
    found = {}
    for measure_id, index in sorted(seen.entities.measures.items()):
        latest = seen.latest(index.changes)
        if latest is not None:
            found[measure_id] = MeasureHistory(measure_id, index, seen, latest)
    return found


def _end(change: MeasureChanged, book: DeadlineBook, on: dt.date) -> tuple[dt.date | None, tuple[str, ...]]:
    """The last day the change applies, as known on `on`; a suspension follows its deadline's extensions."""
    ends = [change.effective_until] if change.effective_until else []
    because: tuple[str, ...] = ()
    if change.until_deadline:
        due = book.due(change.until_deadline, on)
        # An unrecorded deadline cannot end the change.
        if due is not None:
            ends.append(due.on)
            because = due.because
    return min(ends, default=None), because


def ruling(history: MeasureHistory, on: dt.date, book: DeadlineBook) -> Ruling | None:
    ended: list[tuple[dt.date, tuple[str, ...]]] = []
    for fact in history.acts:
        start = starts_on(fact.event)
        if start > on:
            continue
        end, end_because = _end(fact.event, book, on)
        if end is not None and end < on:
            if end >= start:
                ended.append((end, (*fact.because, *end_because)))
            continue
        # A stronger change that ran out after this one started delays when this one took over.
        overtaken = [(e, b) for e, b in ended if e >= start]
        return Ruling(
            change=fact,
            since=max([start, *(e + _DAY for e, _ in overtaken)]),
            until=end,
            because=because_of(fact.because, end_because, *(b for _, b in overtaken)),
        )
    return None


class PendingChange(Struct, frozen=True, kw_only=True):
    measure_id: str
    status: MeasureStatus
    rate_pct: float | None
    effective_from: dt.date
    because: tuple[str, ...]


def pending_changes(history: MeasureHistory, as_of: dt.date, book: DeadlineBook) -> tuple[PendingChange, ...]:
    """Scheduled changes that will apply on their first day; a rate replaced before its date is left out."""
    current = ruling(history, as_of, book)
    scheduled: list[PendingChange] = []
    for day in sorted(_scheduled_days(history, as_of, book)):
        upcoming = ruling(history, day, book)
        if upcoming is None or starts_on(upcoming.change.event) != day:
            continue
        if current is None or upcoming.change.event_id != current.change.event_id:
            change = upcoming.change.event
            scheduled.append(
                PendingChange(
                    measure_id=history.measure_id,
                    status=change.status,
                    rate_pct=change.rate_pct,
                    effective_from=day,
                    because=upcoming.because,
                )
            )
            current = upcoming
    return tuple(scheduled)


def _scheduled_days(history: MeasureHistory, as_of: dt.date, book: DeadlineBook) -> set[dt.date]:
    """The first days after as_of on which an act may take over (a superset of those that do).

    An act takes over on its first day d only if every stronger act that started by as_of has
    ended before d: the walk stops at one that never ends, or once no weaker act can start late
    enough (none starts more than `max_lead` days after it was announced). An act's end does not
    move after as_of: the book holds no extension announced later.
    """
    days = set()
    horizon = as_of  # candidates must start after as_of and after every end seen so far
    lead = dt.timedelta(days=history.max_lead)
    for fact in history.acts:
        if fact.occurred_on + lead <= horizon:
            break
        start = starts_on(fact.event)
        if start > as_of:
            if start > horizon:
                days.add(start)
            continue
        end = _end(fact.event, book, as_of)[0]
        if end is None:
            break
        horizon = max(horizon, end)
    return days


class MeasureView(Struct, frozen=True, kw_only=True):
    measure_id: str
    kind: MeasureKind
    name: str | None
    imposed_by: str
    applies_to: str
    legal_basis: str | None
    scope: str | None
    # None: no change applies on as_of (none in effect yet, or all ran out)
    status: MeasureStatus | None
    in_force: bool
    rate_pct: float | None
    since: dt.date | None
    until: dt.date | None
    until_deadline: str | None
    pending: tuple[PendingChange, ...]
    because: tuple[str, ...]


class MeasuresView(Struct, frozen=True, kw_only=True):
    measures: tuple[MeasureView, ...]


def measures(view: View) -> MeasuresView:
    book = deadline_book(view)
    found: list[MeasureView] = []
    for history in measure_histories(view).values():
        latest = history.latest
        if latest.kind == "tariff":
            continue
        applying = ruling(history, view.as_of, book)
        change = applying.change.event if applying else None
        if change is not None:
            status: MeasureStatus | None = change.status
        else:
            status = latest.status if latest.status not in ACTS else None
        found.append(
            MeasureView(
                measure_id=history.measure_id,
                kind=latest.kind,
                name=history.name,
                imposed_by=latest.imposed_by,
                applies_to=latest.applies_to,
                legal_basis=history.legal_basis,
                scope=history.scope,
                status=status,
                in_force=change is not None and counts(change),
                rate_pct=change.rate_pct if change else None,
                since=applying.since if applying else None,
                until=applying.until if applying else None,
                until_deadline=change.until_deadline if change else None,
                pending=pending_changes(history, view.as_of, book),
                because=applying.because if applying else history.latest_fact.because,
            )
        )
    return MeasuresView(measures=tuple(found))
