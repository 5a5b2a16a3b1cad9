"""Which change to a measure applies on a day, and the `measures` read model (non-tariff measures)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from msgspec import Struct

from events.payloads import MeasureChanged, MeasureKind, MeasureStatus
from projections.deadlines import DeadlineBook, deadline_book
from projections.state import Fact, View, because_of, first_given, known

# Threats and announcements are not legal acts: they never displace the change that applies.
ACTS: frozenset[MeasureStatus] = frozenset({"in_force", "suspended", "removed", "invalidated"})
_DAY = dt.timedelta(days=1)


def starts_on(change: MeasureChanged) -> dt.date:
    return change.effective_from or change.occurred_on


def counts(change: MeasureChanged) -> bool:
    """Whether the change puts the measure in force (a partial suspension keeps its remaining rate)."""
    return change.status == "in_force" or (change.status == "suspended" and change.rate_pct is not None)


@dataclasses.dataclass(frozen=True)
class MeasureHistory:
    """The known changes to one measure, strongest claim first (announced latest, starting latest, recorded latest)."""

    measure_id: str
    changes: tuple[Fact[MeasureChanged], ...]

    @property
    def latest(self) -> MeasureChanged:
        return self.changes[0].event

    @property
    def acts(self) -> Iterable[Fact[MeasureChanged]]:
        return (f for f in self.changes if f.event.status in ACTS)

    @property
    def legal_basis(self) -> str | None:
        return first_given(self.changes, "legal_basis")


@dataclasses.dataclass(frozen=True)
class Ruling:
    """The change that applies to a measure on a day, since when, until when, and why."""

    change: Fact[MeasureChanged]
    since: dt.date
    until: dt.date | None
    because: tuple[str, ...]


def measure_histories(view: View) -> dict[str, MeasureHistory]:
    grouped: dict[str, list[Fact[MeasureChanged]]] = {}
    for fact in known(view, MeasureChanged):
        grouped.setdefault(fact.event.measure_id, []).append(fact)
    return {
        measure_id: MeasureHistory(
            measure_id=measure_id,
            changes=tuple(sorted(facts, key=lambda f: (f.occurred_on, starts_on(f.event), f.version), reverse=True)),
        )
        for measure_id, facts in sorted(grouped.items())
    }


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
    for day in sorted({starts_on(f.event) for f in history.acts if starts_on(f.event) > as_of}):
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
                name=first_given(history.changes, "name"),
                imposed_by=latest.imposed_by,
                applies_to=latest.applies_to,
                legal_basis=history.legal_basis,
                scope=first_given(history.changes, "scope"),
                status=status,
                in_force=change is not None and counts(change),
                rate_pct=change.rate_pct if change else None,
                since=applying.since if applying else None,
                until=applying.until if applying else None,
                until_deadline=change.until_deadline if change else None,
                pending=pending_changes(history, view.as_of, book),
                because=applying.because if applying else history.changes[0].because,
            )
        )
    return MeasuresView(measures=tuple(found))
