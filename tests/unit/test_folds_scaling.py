"""The indexed read models answer exactly what scanning every event answers, and read only a few of them.

`_reference_*` below is the scanning implementation the indexes replaced (every known event of a
type per query), kept here as the oracle: random histories with corrections, retractions, backfills,
clocks that go back, checkpoints and branches must give identical answers at random (as_of, known_at).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.payloads import Fact as FactType
from events.payloads import (
    ConcessionMade,
    CoverageDeclared,
    DeadlineExtended,
    DeadlineResolved,
    DeadlineSet,
    DemandMade,
    Event,
    EventCorrected,
    EventRetracted,
    ExemptionGranted,
    IssueRaised,
    IssueUpdated,
    MeasureChanged,
    NegotiationOpened,
    Person,
    RoundHeld,
    RoundScheduled,
    StatementMade,
    Suspension,
    TruceAgreed,
    TruceEnded,
    TruceExtended,
)
from events.records import Recorded, stream_id
from projections import (
    DeadlinesView,
    DeadlineView,
    IssuesView,
    IssueView,
    MeasureRate,
    MeasuresView,
    MeasureView,
    PendingChange,
    RoundsView,
    RoundView,
    State,
    TariffDirection,
    TariffScheduleView,
    TruceLapse,
    TruceView,
    View,
    deadlines,
    evolve,
    fold,
    index,
    issues,
    measures,
    rounds,
    statements,
    tariff_schedule,
    truce,
    view,
)
from projections.coverage import CoverageView, coverage
from projections.deadlines import Due, Extension
from projections.index import Sorted, Version, bound, sort_key
from projections.issues import Position, StatusChange
from projections.measures import Exemption, Ruling
from projections.state import Fact, because_of, first_given, in_world_order, known
from projections.tariffs import MeasureLine

NEGOTIATION = "scaling"
EPOCH = dt.date(2025, 1, 1)
RECORDED_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
_DAY = dt.timedelta(days=1)

# --- the reference: scan every known event of the types a read model needs ---------------------

_ACTS = frozenset({"in_force", "suspended", "removed", "expired", "invalidated"})


@dataclasses.dataclass(frozen=True)
class _Book:
    set: dict[str, Fact]
    extended: dict[str, list[Fact]]
    resolved: dict[str, Fact]

    def chain(self, deadline_id: str, on: dt.date) -> list[Fact]:
        return [f for f in self.extended.get(deadline_id, []) if f.occurred_on <= on]

    def due(self, deadline_id: str, on: dt.date) -> Due | None:
        chain = self.chain(deadline_id, on)
        origin = self.set.get(deadline_id)
        if chain:
            due_on = chain[-1].event.due_on
        elif origin is not None:
            due_on = origin.event.due_on
        else:
            return None
        newest_first = [f.event for f in reversed(chain)] + ([origin.event] if origin else [])
        ends = [e.ends for e in newest_first if e.ends]
        consequences = [e.consequence for e in newest_first if e.consequence]
        return Due(
            on=due_on,
            because=because_of(origin.because if origin else (), *(f.because for f in chain)),
            ends=ends[0] if ends else "end_of_day",
            consequence=consequences[0] if consequences else None,
        )


def _book(seen: View) -> _Book:
    book = _Book(set={}, extended={}, resolved={})
    for fact in in_world_order(seen, DeadlineSet, DeadlineExtended, DeadlineResolved):
        match fact.event:
            case DeadlineSet(deadline_id=deadline_id):
                book.set[deadline_id] = fact
            case DeadlineExtended(deadline_id=deadline_id):
                book.extended.setdefault(deadline_id, []).append(fact)
            case DeadlineResolved(deadline_id=deadline_id):
                book.resolved[deadline_id] = fact
    return book


def _extensions(book: _Book, deadline_id: str, on: dt.date) -> tuple[Extension, ...]:
    return tuple(
        Extension(due_on=f.event.due_on, event_id=f.event_id, occurred_on=f.occurred_on)
        for f in book.chain(deadline_id, on)
    )


def _first_day_after(due: Due) -> dt.date:
    return due.on if due.ends == "start_of_day" else due.on + _DAY


def _reference_deadlines(seen: View) -> DeadlinesView:
    book = _book(seen)
    upcoming: list[DeadlineView] = []
    passed: list[DeadlineView] = []
    for deadline_id in book.set.keys() | book.extended.keys():
        due = book.due(deadline_id, seen.as_of)
        if due is None:
            continue
        origin = book.set.get(deadline_id)
        resolution = book.resolved.get(deadline_id)
        is_upcoming = resolution is None and seen.as_of < _first_day_after(due)
        (upcoming if is_upcoming else passed).append(
            DeadlineView(
                deadline_id=deadline_id,
                title=origin.event.title if origin else None,
                due_on=due.on,
                ends=due.ends,
                lapses_on=_first_day_after(due),
                original_due_on=origin.event.due_on if origin else None,
                days_remaining=(due.on - seen.as_of).days if is_upcoming else None,
                consequence=due.consequence,
                extensions=_extensions(book, deadline_id, seen.as_of),
                resolved_on=resolution.occurred_on if resolution else None,
                outcome=resolution.event.outcome if resolution else None,
                because=because_of(due.because, resolution.because if resolution else ()),
            )
        )
    upcoming.sort(key=lambda d: (d.due_on, d.deadline_id))
    passed.sort(key=lambda d: (d.due_on, d.deadline_id), reverse=True)
    return DeadlinesView(upcoming=tuple(upcoming), passed=tuple(passed))


def _suspensions(facts: list[Fact]) -> tuple[Suspension, ...]:
    rates: dict[str, float] = {}
    points: dict[str, float] = {}
    named: list[str] = []
    for fact in facts:
        for entry in fact.event.suspends:
            if isinstance(entry, str):
                continue
            if entry.measure_id not in named:
                named.append(entry.measure_id)
            if entry.lapse_rate_pct is not None:
                rates[entry.measure_id] = entry.lapse_rate_pct
            if entry.suspended_points is not None:
                points[entry.measure_id] = entry.suspended_points
    return tuple(Suspension(measure_id=m, lapse_rate_pct=rates.get(m), suspended_points=points.get(m)) for m in named)


def _truce_view(facts: list[Fact], book: _Book, as_of: dt.date) -> TruceView:
    first = next((f for f in facts if isinstance(f.event, TruceAgreed)), facts[0]).event
    effective_from = first.effective_from or first.occurred_on
    deadline_id = next((f.event.deadline_id for f in reversed(facts) if f.event.deadline_id), None)
    due = book.due(deadline_id, as_of) if deadline_id else None
    expires_on = due.on if due else None
    ended_on = next((f.occurred_on for f in facts if isinstance(f.event, TruceEnded)), None)
    if ended_on is not None:
        status = "ended"
    elif as_of < effective_from:
        status = "pending"
    elif due is None or as_of < _first_day_after(due):
        status = "active"
    else:
        status = "lapsed"
    ids = [e if isinstance(e, str) else e.measure_id for f in facts for e in f.event.suspends]
    return TruceView(
        status=status,  # type: ignore[arg-type]
        truce_id=first.truce_id,
        parties=tuple(dict.fromkeys(p for f in facts for p in f.event.parties)),
        effective_from=effective_from,
        deadline_id=deadline_id,
        expires_on=expires_on,
        ends=due.ends if due else None,
        lapses_on=_first_day_after(due) if due else None,
        days_remaining=(expires_on - as_of).days if expires_on and status in ("pending", "active") else None,
        ended_on=ended_on,
        extensions=_extensions(book, deadline_id, as_of) if deadline_id else (),
        suspends=tuple(dict.fromkeys(ids)),
        suspensions=_suspensions(facts),
        because=because_of(*(f.because for f in facts), due.because if due else ()),
    )


def _truces(seen: View, book: _Book) -> list[TruceView]:
    grouped: dict[str, list[Fact]] = {}
    for fact in in_world_order(seen, TruceAgreed, TruceExtended, TruceEnded):
        grouped.setdefault(fact.event.truce_id, []).append(fact)
    return [_truce_view(facts, book, seen.as_of) for facts in grouped.values()]


def _reference_truce(seen: View, truce_id: str | None = None) -> TruceView:
    found = [t for t in _truces(seen, _book(seen)) if truce_id in (None, t.truce_id)]
    return found[-1] if found else TruceView(status="none", truce_id=truce_id)


def _starts_on(change: MeasureChanged) -> dt.date:
    return change.effective_from or change.occurred_on


def _counts(status: str | None, rate: float | None) -> bool:
    return status == "in_force" or (status == "suspended" and rate is not None)


@dataclasses.dataclass(frozen=True)
class _History:
    measure_id: str
    changes: tuple[Fact, ...]
    exemptions: tuple[Fact, ...]

    @property
    def latest(self) -> MeasureChanged:
        return self.changes[0].event

    @property
    def acts(self) -> Iterable[Fact]:
        return (f for f in self.changes if f.event.status in _ACTS)

    @property
    def legal_basis(self) -> str | None:
        return first_given(self.changes, "legal_basis")

    def exempted(self, on: dt.date) -> tuple[Exemption, ...]:
        latest = {f.event.exemption_id: f for f in self.exemptions}
        return tuple(
            Exemption(exemption_id=i, description=f.event.description, since=f.event.effective_from or f.occurred_on,
                      until=f.event.effective_until, because=f.because)
            for i, f in sorted(latest.items())
            if (f.event.effective_from or f.occurred_on) <= on and (f.event.effective_until is None or on <= f.event.effective_until)
        )


def _histories(seen: View) -> dict[str, _History]:
    changes: dict[str, list[Fact]] = {}
    exempted: dict[str, list[Fact]] = {}
    for fact in in_world_order(seen, MeasureChanged, ExemptionGranted):
        target = changes if isinstance(fact.event, MeasureChanged) else exempted
        target.setdefault(fact.event.measure_id, []).append(fact)
    return {
        measure_id: _History(
            measure_id=measure_id,
            changes=tuple(sorted(facts, key=lambda f: (f.occurred_on, _starts_on(f.event), f.version), reverse=True)),
            exemptions=tuple(exempted.get(measure_id, ())),
        )
        for measure_id, facts in sorted(changes.items())
    }


def _lapse_table(seen: View, book: _Book) -> dict[tuple[str, str], tuple[float, tuple[str, ...]]]:
    found = {}
    for t in _truces(seen, book):
        for s in t.suspensions:
            if t.deadline_id is not None and s.lapse_rate_pct is not None:
                found[(s.measure_id, t.deadline_id)] = (s.lapse_rate_pct, t.because)
    return found


def _lapse(change: MeasureChanged, table: dict) -> tuple[float, tuple[str, ...]] | None:
    if change.status != "suspended":
        return None
    if change.lapse_rate_pct is not None:
        return change.lapse_rate_pct, ()
    return table.get((change.measure_id, change.until_deadline)) if change.until_deadline else None


def _end(change: MeasureChanged, book: _Book, on: dt.date) -> tuple[dt.date | None, tuple[str, ...]]:
    ends = [change.effective_until] if change.effective_until else []
    because: tuple[str, ...] = ()
    if change.until_deadline:
        due = book.due(change.until_deadline, on)
        if due is not None:
            ends.append(_first_day_after(due) - _DAY)
            because = due.because
    return min(ends, default=None), because


def _ruling(history: _History, on: dt.date, book: _Book, table: dict) -> tuple[Ruling | None, list]:
    ended: list[tuple[dt.date, tuple[str, ...]]] = []
    for fact in history.acts:
        change = fact.event
        start = _starts_on(change)
        if start > on:
            continue
        end, end_because = _end(change, book, on)
        lapse = _lapse(change, table) if end is not None and end < on else None
        if end is not None and end < on and lapse is None:
            if end >= start:
                ended.append((end, (*fact.because, *end_because)))
            continue
        if lapse is not None:
            status, rate, first, until, why = "in_force", lapse[0], max(start, end + _DAY), None, (*end_because, *lapse[1])
        else:
            status, rate, first, until, why = change.status, change.rate_pct, start, end, end_because
        overtaken = [(e, b) for e, b in ended if e >= first]
        return Ruling(
            change=fact, status=status, rate_pct=rate, starts=first,
            since=max([first, *(e + _DAY for e, _ in overtaken)]), until=until,
            because=because_of(fact.because, why, *(b for _, b in overtaken)), lapsed=lapse is not None,
        ), ended
    return None, ended


def _pending(history: _History, as_of: dt.date, book: _Book, table: dict) -> tuple[PendingChange, ...]:
    current = _ruling(history, as_of, book, table)[0]
    days = {_starts_on(f.event) for f in history.acts if _starts_on(f.event) > as_of}
    for f in history.acts:
        end = _end(f.event, book, as_of)[0]
        if end is not None and _lapse(f.event, table) is not None:
            days.add(max(_starts_on(f.event), end + _DAY))
    scheduled: list[PendingChange] = []
    for day in sorted(d for d in days if d > as_of):
        upcoming = _ruling(history, day, book, table)[0]
        if upcoming is None or upcoming.starts != day:
            continue
        if current is None or (upcoming.change.event_id, upcoming.lapsed) != (current.change.event_id, current.lapsed):
            scheduled.append(
                PendingChange(
                    measure_id=history.measure_id, status=upcoming.status, rate_pct=upcoming.rate_pct,
                    effective_from=day, because=upcoming.because, announced_on=upcoming.change.occurred_on,
                )
            )
            current = upcoming
    return tuple(scheduled)


def _stage(history: _History, as_of: dt.date, book: _Book, table: dict) -> tuple[Any, ...]:
    """(status, since, rate, until, because, ruling, pending) as the lifecycle rules say."""
    applying, ended = _ruling(history, as_of, book, table)
    pending = _pending(history, as_of, book, table)
    latest = history.changes[0]
    if applying is not None:
        return applying.status, applying.since, applying.rate_pct, applying.until, applying.because, applying, pending
    if pending:
        return "announced", pending[0].announced_on, pending[0].rate_pct, None, pending[0].because, None, pending
    if latest.event.status not in _ACTS:
        return latest.event.status, latest.occurred_on, latest.event.rate_pct, None, latest.because, None, pending
    if ended:
        last = max(e for e, _ in ended)
        because = next(b for e, b in ended if e == last)
        return "expired", last + _DAY, None, None, because, None, pending
    return None, None, None, None, latest.because, None, pending


def _terms(applying: Ruling | None, table: dict) -> tuple[float | None, float | None]:
    if applying is None or applying.lapsed or applying.status != "suspended":
        return None, None
    lapse = _lapse(applying.change.event, table)
    return (lapse[0] if lapse else None), applying.change.event.suspended_points


def _reference_measures(seen: View) -> MeasuresView:
    book = _book(seen)
    table = _lapse_table(seen, book)
    found: list[MeasureView] = []
    for history in _histories(seen).values():
        latest = history.latest
        if latest.kind == "tariff":
            continue
        status, since, rate, until, because, applying, pending = _stage(history, seen.as_of, book, table)
        lapse_rate, points = _terms(applying, table)
        found.append(
            MeasureView(
                measure_id=history.measure_id,
                kind=latest.kind,
                name=first_given(history.changes, "name"),
                imposed_by=latest.imposed_by,
                applies_to=latest.applies_to,
                all_destinations=latest.applies_to == "ALL",
                legal_basis=history.legal_basis,
                scope=first_given(history.changes, "scope"),
                status=status,
                in_force=applying is not None and _counts(applying.status, applying.rate_pct),
                rate_pct=rate,
                since=since,
                until=until,
                until_deadline=applying.change.event.until_deadline if applying else None,
                lapse_rate_pct=lapse_rate,
                suspended_points=points,
                exemptions=history.exempted(seen.as_of),
                pending=pending,
                because=because,
            )
        )
    return MeasuresView(measures=tuple(found))


def _line(history: _History, applying: Ruling, on: dt.date, terms: tuple[float | None, float | None]) -> MeasureRate:
    change = applying.change.event
    exemptions = history.exempted(on)
    return MeasureRate(
        measure_id=history.measure_id,
        name=first_given(history.changes, "name"),
        rate_pct=applying.rate_pct,
        legal_basis=history.legal_basis,
        status=applying.status,
        rate_kind=change.rate_kind,
        coverage="partial" if change.coverage == "partial" or exemptions else "all",
        counted=change.coverage == "all" and change.rate_kind == "additional",
        all_destinations=history.latest.applies_to == "ALL",
        since=applying.since,
        until=applying.until,
        lapse_rate_pct=terms[0],
        suspended_points=terms[1],
        exemptions=exemptions,
        because=because_of(applying.because, *(e.because for e in exemptions)),
    )


def _in_force(histories: Sequence[_History], on: dt.date, book: _Book, table: dict) -> tuple[MeasureRate, ...]:
    rates = []
    for history in histories:
        applying = _ruling(history, on, book, table)[0]
        if applying is not None and _counts(applying.status, applying.rate_pct):
            rates.append(_line(history, applying, on, (None, None)))
    return tuple(rates)


def _total(rates: Sequence[MeasureRate]) -> float:
    return sum(r.rate_pct or 0.0 for r in rates if r.counted)


def _touches(t: TruceView, histories: Sequence[_History]) -> bool:
    return any(
        h.measure_id in t.suspends
        or (t.deadline_id is not None and any(f.event.until_deadline == t.deadline_id for f in h.acts))
        for h in histories
    )


def _truce_lapse(
    histories: Sequence[_History], running: Sequence[tuple[dt.date, TruceView]], book: _Book, table: dict
) -> TruceLapse | None:
    touching = [(lapses_on, t) for lapses_on, t in running if _touches(t, histories)]
    if not touching:
        return None
    applies_from, first = min(touching, key=lambda pair: pair[0])
    rates = _in_force(histories, applies_from, book, table)
    return TruceLapse(
        truce_id=first.truce_id,
        applies_from=applies_from,
        total_additional_pct=_total(rates),
        measures=rates,
        because=because_of(first.because, *(r.because for r in rates)),
    )


def _parties(seen: View) -> list[str]:
    always = dataclasses.replace(seen, as_of=dt.date.max, _memo={})
    return list(dict.fromkeys(p for f in in_world_order(always, NegotiationOpened) for p in f.event.parties))


def _reference_tariff_schedule(seen: View, legal_basis: str | None = None) -> TariffScheduleView:
    book = _book(seen)
    table = _lapse_table(seen, book)
    parties = _parties(seen)
    directions: dict[tuple[str, str], list[_History]] = {}
    for history in _histories(seen).values():
        latest = history.latest
        wanted = legal_basis is None or (
            history.legal_basis is not None and legal_basis.casefold() in history.legal_basis.casefold()
        )
        if latest.kind != "tariff" or not wanted:
            continue
        targets = [latest.applies_to]
        if latest.applies_to == "ALL":
            targets = [p for p in parties if p != latest.imposed_by] or ["ALL"]
        for target in targets:
            directions.setdefault((latest.imposed_by, target), []).append(history)
    running = [
        (t.lapses_on, t) for t in _truces(seen, book) if t.status in ("pending", "active") and t.lapses_on is not None
    ]
    schedule = []
    for (imposed_by, applies_to), histories in sorted(directions.items()):
        rates, others, pending = [], [], []
        for history in histories:
            status, since, rate, until, because, applying, scheduled = _stage(history, seen.as_of, book, table)
            pending += scheduled
            if applying is not None and _counts(applying.status, applying.rate_pct):
                rates.append(_line(history, applying, seen.as_of, _terms(applying, table)))
            else:
                others.append(
                    MeasureLine(
                        measure_id=history.measure_id, name=first_given(history.changes, "name"), status=status,
                        since=since, rate_pct=rate, legal_basis=history.legal_basis,
                        all_destinations=history.latest.applies_to == "ALL", because=because,
                    )
                )
        schedule.append(
            TariffDirection(
                imposed_by=imposed_by,
                applies_to=applies_to,
                total_additional_pct=_total(rates),
                all_inclusive_pct=max((r.rate_pct for r in rates if r.rate_kind == "all_inclusive"
                                       and (r.coverage == "all" or r.exemptions) and r.rate_pct is not None), default=None),
                measures=tuple(rates),
                not_in_force=tuple(others),
                pending=tuple(pending),
                on_truce_lapse=_truce_lapse(histories, running, book, table),
                because=because_of(*(r.because for r in rates)),
            )
        )
    return TariffScheduleView(legal_basis=legal_basis, directions=tuple(schedule))


DATED_TYPES = tuple(t for t in FactType.__args__ if t not in (CoverageDeclared, NegotiationOpened))  # type: ignore[attr-defined]


def _reference_coverage(seen: View) -> CoverageView:
    always = dataclasses.replace(seen, as_of=dt.date.max, _memo={})
    key = lambda f: (f.occurred_on, f.version)  # noqa: E731
    declared = max(known(always, CoverageDeclared), key=key, default=None)
    if declared is not None:
        through, because = declared.event.record_through, declared.because
    else:
        last = max(known(always, *DATED_TYPES), key=key, default=None)
        through, because = (last.occurred_on, last.because) if last else (None, ())
    return CoverageView(
        record_through=through, declared=declared is not None,
        beyond_record=through is not None and seen.as_of > through, because=because,
    )


def _reference_issues(seen: View) -> IssuesView:
    found: dict[str, dict[str, Any]] = {}
    for fact in in_world_order(seen, IssueRaised, IssueUpdated, DemandMade, ConcessionMade):
        event = fact.event
        if event.issue_id is None:
            continue
        issue = found.setdefault(
            event.issue_id, {"title": None, "category": None, "text": None, "history": [], "positions": [], "because": []}
        )
        issue["because"].append(fact.because)
        if isinstance(event, (IssueRaised, IssueUpdated)):
            issue["title"] = event.title or issue["title"]
            issue["text"] = event.text or issue["text"]
            if isinstance(event, IssueRaised):
                issue["category"] = event.category
            history = issue["history"]
            if event.status is not None and (not history or history[-1].status != event.status):
                history.append(StatusChange(status=event.status, occurred_on=event.occurred_on, event_id=fact.event_id))
        else:
            issue["positions"].append(
                Position(
                    kind="demand" if isinstance(event, DemandMade) else "concession",
                    by=event.by,
                    to=event.to,
                    text=event.text,
                    occurred_on=event.occurred_on,
                    event_id=fact.event_id,
                )
            )
    return IssuesView(
        issues=tuple(
            IssueView(
                issue_id=issue_id,
                title=issue["title"],
                category=issue["category"],
                status=issue["history"][-1].status if issue["history"] else "open",
                text=issue["text"],
                history=tuple(issue["history"]),
                positions=tuple(issue["positions"]),
                because=because_of(*issue["because"]),
            )
            for issue_id, issue in sorted(found.items())
        )
    )


def _reference_rounds(seen: View) -> RoundsView:
    grouped: dict[str, list[Fact]] = {}
    for fact in in_world_order(seen, RoundScheduled, RoundHeld):
        grouped.setdefault(fact.event.round_id, []).append(fact)
    found = []
    for round_id, facts in grouped.items():
        latest = facts[-1].event
        found.append(
            RoundView(
                round_id=round_id,
                name=latest.name,
                status="held" if any(isinstance(f.event, RoundHeld) for f in facts) else "scheduled",
                location=first_given(reversed(facts), "location"),
                starts_on=latest.starts_on,
                ends_on=latest.ends_on,
                delegations=first_given(reversed(facts), "delegations") or {},
                outcome=first_given(reversed(facts), "outcome"),
                because=because_of(*(f.because for f in facts)),
            )
        )
    return RoundsView(rounds=tuple(sorted(found, key=lambda r: (r.starts_on, r.round_id))))


def reference(state: State, as_of: dt.date, known_at: dt.datetime) -> dict[str, Any]:
    seen = view(state, as_of, known_at)
    return {
        "tariffs": _reference_tariff_schedule(seen),
        "tariffs ieepa": _reference_tariff_schedule(seen, "ieepa"),
        "truce": _reference_truce(seen),
        "truce t1": _reference_truce(seen, "t1"),
        "measures": _reference_measures(seen),
        "deadlines": _reference_deadlines(seen),
        "issues": _reference_issues(seen),
        "rounds": _reference_rounds(seen),
        "coverage": _reference_coverage(seen),
    }


def indexed(state: State, as_of: dt.date, known_at: dt.datetime) -> dict[str, Any]:
    # One view for all, as the service asks: the read models share what they work out.
    seen = view(state, as_of, known_at)
    return {
        "tariffs": tariff_schedule(seen),
        "tariffs ieepa": tariff_schedule(seen, "ieepa"),
        "truce": truce(seen),
        "truce t1": truce(seen, "t1"),
        "measures": measures(seen),
        "deadlines": deadlines(seen),
        "issues": issues(seen),
        "rounds": rounds(seen),
        "coverage": coverage(seen),
    }


def assert_same(state: State, as_of: dt.date, known_at: dt.datetime) -> None:
    expected, got = reference(state, as_of, known_at), indexed(state, as_of, known_at)
    for name in expected:
        assert got[name] == expected[name], f"{name} at as_of={as_of} known_at={known_at} size={state.size}"


# --- random histories -------------------------------------------------------------------------

MEASURES = (("m-ieepa", "tariff", "IEEPA"), ("m-301", "tariff", "Section 301"), ("m-cn", "tariff", None), ("ctl", "export_control", None))
DEADLINES = ("d1", "d2", "d3")
offsets = st.integers(min_value=0, max_value=120)
maybe_days = st.none() | st.integers(min_value=0, max_value=60).map(lambda n: dt.timedelta(days=n))


@st.composite
def measure_changed(draw: st.DrawFn, on: dt.date) -> MeasureChanged:
    measure_id, kind, basis = draw(st.sampled_from(MEASURES))
    effective_from = on + lead if (lead := draw(maybe_days)) is not None else None
    runs = draw(maybe_days)
    imposed_by, applies_to = ("CN", "US") if measure_id == "m-cn" else ("US", "CN")
    status = draw(st.sampled_from(["threatened", "announced", "in_force", "in_force", "suspended", "suspended", "removed", "expired", "invalidated"]))
    until_deadline = draw(st.none() | st.sampled_from(DEADLINES))
    effective_until = (effective_from or on) + runs if runs is not None else None
    suspension = status == "suspended"
    ends = until_deadline is not None or effective_until is not None
    return MeasureChanged(
        occurred_on=on,
        measure_id=measure_id,
        kind=kind,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        imposed_by=imposed_by,
        applies_to=draw(st.sampled_from([applies_to, applies_to, "ALL"])),
        name=draw(st.sampled_from([None, "Duty", "Tariff"])),
        legal_basis=draw(st.sampled_from([basis, basis, None, "IEEPA reciprocal"])),
        scope=draw(st.sampled_from([None, "all goods"])),
        rate_pct=draw(st.none() | st.sampled_from([10, 20, 34, 125])) if kind == "tariff" else None,
        coverage=draw(st.sampled_from(["all", "all", "partial"])),
        rate_kind=draw(st.sampled_from(["additional", "additional", "all_inclusive"])),
        effective_from=effective_from,
        effective_until=effective_until,
        until_deadline=until_deadline,
        lapse_rate_pct=draw(st.none() | st.sampled_from([0, 34])) if suspension and ends and kind == "tariff" else None,
        suspended_points=draw(st.none() | st.just(24)) if suspension else None,
    )


@st.composite
def exemption_event(draw: st.DrawFn, on: dt.date) -> Event:
    effective_from = on + lead if (lead := draw(maybe_days)) is not None else None
    runs = draw(maybe_days)
    return ExemptionGranted(
        occurred_on=on,
        measure_id=draw(st.sampled_from([m for m, _, _ in MEASURES])),
        exemption_id=draw(st.sampled_from(["phones", "chips"])),
        description=draw(st.sampled_from(["Smartphones", "Chips and computers"])),
        effective_from=effective_from,
        effective_until=(effective_from or on) + runs if runs is not None else None,
    )


@st.composite
def deadline_event(draw: st.DrawFn, on: dt.date) -> Event:
    deadline_id = draw(st.sampled_from(DEADLINES))
    due_on = on + dt.timedelta(days=draw(st.integers(0, 120)))
    ends = draw(st.sampled_from([None, None, "start_of_day", "end_of_day"]))
    consequence = draw(st.sampled_from([None, "Rates return", "Talks end"]))
    match draw(st.sampled_from(["set", "extended", "extended", "resolved"])):
        case "set":
            return DeadlineSet(
                occurred_on=on, deadline_id=deadline_id, title=draw(st.sampled_from(["A", "B"])), due_on=due_on, ends=ends,
                consequence=consequence,
            )
        case "extended":
            return DeadlineExtended(occurred_on=on, deadline_id=deadline_id, due_on=due_on, ends=ends, consequence=consequence)
    return DeadlineResolved(occurred_on=on, deadline_id=deadline_id, outcome="met")


SUSPENDS = [
    (),
    ("m-ieepa",),
    ("ctl", "m-301"),
    (Suspension(measure_id="m-ieepa", lapse_rate_pct=34, suspended_points=24),),
    ("ctl", Suspension(measure_id="m-cn", lapse_rate_pct=10)),
    (Suspension(measure_id="m-ieepa", suspended_points=20), Suspension(measure_id="m-301", lapse_rate_pct=25)),
]


@st.composite
def truce_event(draw: st.DrawFn, on: dt.date) -> Event:
    kind = draw(st.sampled_from([TruceAgreed, TruceExtended, TruceExtended, TruceEnded]))
    return kind(
        occurred_on=on,
        truce_id=draw(st.sampled_from(["t1", "t2"])),
        parties=draw(st.sampled_from([(), ("US", "CN"), ("CN",)])),
        effective_from=on + lead if (lead := draw(maybe_days)) is not None else None,
        deadline_id=draw(st.none() | st.sampled_from(DEADLINES)),
        suspends=draw(st.sampled_from(SUSPENDS)),
    )


@st.composite
def issue_event(draw: st.DrawFn, on: dt.date) -> Event:
    issue_id = draw(st.sampled_from(["i1", "i2", "i3"]))
    match draw(st.sampled_from(["raised", "updated", "updated", "demand", "concession"])):
        case "raised":
            return IssueRaised(
                occurred_on=on, issue_id=issue_id, title=draw(st.sampled_from(["Soybeans", "Fentanyl"])),
                category=draw(st.sampled_from([None, "agriculture"])),
                status=draw(st.sampled_from(["open", "in_negotiation"])),
            )
        case "updated":
            return IssueUpdated(
                occurred_on=on, issue_id=issue_id,
                status=draw(st.sampled_from([None, "open", "stalled", "resolved", "in_negotiation", "awaiting_approval"])),
                title=draw(st.sampled_from([None, "Renamed"])), text=draw(st.sampled_from([None, "notes"])),
            )
        case "demand":
            return DemandMade(occurred_on=on, by="US", to="CN", issue_id=draw(st.sampled_from([issue_id, None])), text="buy more")
    return ConcessionMade(occurred_on=on, by="CN", issue_id=issue_id, text="will buy")


@st.composite
def round_event(draw: st.DrawFn, on: dt.date) -> Event:
    kind = draw(st.sampled_from([RoundScheduled, RoundHeld]))
    return kind(
        occurred_on=on,
        round_id=draw(st.sampled_from(["r1", "r2"])),
        name=draw(st.sampled_from(["Geneva", "London"])),
        location=draw(st.sampled_from([None, "Geneva", "London"])),
        starts_on=on + dt.timedelta(days=draw(st.integers(0, 20))),
        delegations=draw(st.sampled_from([{}, {"US": (Person(name="Scott Bessent"),)}])),
        outcome=draw(st.sampled_from([None, "progress"])),
    )


@st.composite
def other_event(draw: st.DrawFn, on: dt.date) -> Event:
    match draw(st.sampled_from(["statement", "opened", "coverage"])):
        case "statement":
            return StatementMade(occurred_on=on, speaker=Person(name="He Lifeng", party="CN"), quote="fine")
        case "coverage":
            return CoverageDeclared(occurred_on=on, record_through=on - dt.timedelta(days=draw(st.integers(0, 30))))
    return NegotiationOpened(occurred_on=on, title="Trade", parties=draw(st.sampled_from([("US", "CN"), ("US", "CN", "EU"), ("EU",)])))


KINDS = (
    measure_changed, measure_changed, measure_changed, exemption_event, deadline_event, truce_event, issue_event, round_event,
    other_event,
)


@st.composite
def one_measure(draw: st.DrawFn, on: dt.date) -> MeasureChanged:
    """Dense changes to one tariff: scheduled, temporary, until deadlines, all at once."""
    return msgspec.structs.replace(draw(measure_changed(on)), measure_id="m-ieepa", kind="tariff", legal_basis="IEEPA")


DENSE = (one_measure, one_measure, one_measure, one_measure, deadline_event, truce_event)


@st.composite
def payload(draw: st.DrawFn, kinds: Sequence[Any] = KINDS) -> Event:
    on = EPOCH + dt.timedelta(days=draw(offsets))
    return draw(draw(st.sampled_from(kinds))(on))


@st.composite
def history(draw: st.DrawFn, *, max_size: int = 40, kinds: Sequence[Any] = KINDS) -> list[Recorded]:
    """Events and amendments (of earlier events, of amendments, once of an event recorded later), then clocks."""
    count = draw(st.integers(min_value=1, max_value=max_size))
    ids = [str(uuid.UUID(int=n + 1)) for n in range(count)]
    events: list[Event] = []
    for n in range(count):
        if n and draw(st.integers(0, 5)) == 0:
            target = ids[draw(st.integers(0, n - 1 if draw(st.integers(0, 9)) else count - 1))]
            on = EPOCH + dt.timedelta(days=draw(offsets))
            if draw(st.booleans()):
                events.append(EventCorrected(occurred_on=on, target=target, replacement=draw(payload(kinds))))
            else:
                events.append(EventRetracted(occurred_on=on, target=target, reason="wrong"))
        else:
            events.append(draw(payload(kinds)))
    # Mostly a ticking clock, with batches sharing a timestamp; now and then a clock that goes back.
    steps = draw(st.lists(st.sampled_from([0, 1, 1, 1, 5, -3]), min_size=count, max_size=count))
    if draw(st.integers(0, 3)):
        steps = [abs(s) for s in steps]
    clock, times = RECORDED_FROM, []
    for step in steps:
        clock += dt.timedelta(minutes=step)
        times.append(clock)
    return [
        Recorded(
            originator_id=stream_id(NEGOTIATION),
            originator_version=n + 1,
            event_id=ids[n],
            negotiation_id=NEGOTIATION,
            recorded_at=times[n],
            recorded_by="editor@parley.test",
            request_id=ids[n],
            event=event,
        )
        for n, event in enumerate(events)
    ]


def moments(records: Sequence[Recorded]) -> st.SearchStrategy[dt.datetime]:
    times = [r.recorded_at for r in records]
    return st.sampled_from([LATER, RECORDED_FROM - dt.timedelta(minutes=1), *times]) | st.sampled_from(times).map(
        lambda t: t + dt.timedelta(seconds=30)
    )


as_of_dates = st.integers(min_value=-5, max_value=220).map(lambda n: EPOCH + dt.timedelta(days=n))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_indexed_answers_equal_the_scanning_reference(data: st.DataObject) -> None:
    records = data.draw(history())
    state = fold(records)
    for _ in range(3):
        assert_same(state, data.draw(as_of_dates), data.draw(moments(records)))
    if all(a.recorded_at <= b.recorded_at for a, b in itertools.pairwise(records)):
        assert not state._ledger.kept  # a log's clock never goes back: every known_at is a prefix


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_densely_changed_measure_rules_and_schedules_like_the_reference(data: st.DataObject) -> None:
    records = data.draw(history(max_size=60, kinds=DENSE))
    state = fold(records)
    for _ in range(4):
        assert_same(state, data.draw(as_of_dates), data.draw(moments(records)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kinds=st.sampled_from([KINDS, DENSE]))
def test_answers_kept_across_days_that_cannot_differ_equal_the_reference(data: st.DataObject, kinds: Sequence[Any]) -> None:
    """Per-entity answers are kept across views for every as_of between two days their events name
    (projections.state.stepped): one state asked about many nearby days, at several cuts, in any order,
    answers each like the scan; then again after the ledger grew past what was kept."""
    records = data.draw(history(max_size=50, kinds=kinds))
    grown = data.draw(st.integers(1, len(records)))
    state = fold(records[:grown])
    around = data.draw(as_of_dates)
    nearby = st.integers(-8, 8).map(lambda n: around + dt.timedelta(days=n))
    for _ in range(10):  # days close together: most share a step with one asked before
        assert_same(state, data.draw(nearby), data.draw(moments(records[:grown])))
    state = fold(records[grown:], state)
    for _ in range(4):
        assert_same(state, data.draw(nearby), data.draw(moments(records)))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_checkpoints_and_branches_answer_like_the_reference(data: st.DataObject) -> None:
    """Older states read a prefix of a ledger that has grown since; evolving one again branches off."""
    records = data.draw(history())
    states = [State()]
    for r in records:
        states.append(evolve(states[-1], r))
    checkpoint = states[data.draw(st.integers(0, len(records)))]
    for _ in range(2):
        assert_same(checkpoint, data.draw(as_of_dates), data.draw(moments(records)))
    extra = data.draw(history(max_size=8))
    start = checkpoint.version
    branch = fold(
        [
            Recorded(
                originator_id=r.originator_id,
                originator_version=start + n + 1,
                event_id=str(uuid.UUID(int=10_000 + n)),
                negotiation_id=NEGOTIATION,
                recorded_at=max([LATER - dt.timedelta(days=1), *(x.recorded_at for x in records)]) + dt.timedelta(minutes=n),
                recorded_by=r.recorded_by,
                request_id=r.request_id,
                event=r.event,
            )
            for n, r in enumerate(extra)
        ],
        checkpoint,
    )
    for _ in range(2):
        day = data.draw(as_of_dates)
        assert_same(branch, day, LATER)
        assert_same(checkpoint, day, LATER)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_known_at_answer_equals_a_fresh_fold_of_what_was_recorded_by_then(data: st.DataObject) -> None:
    records = data.draw(history())
    known_at = data.draw(moments(records))
    kept = fold(r for r in records if r.recorded_at <= known_at)
    day = data.draw(as_of_dates)
    assert indexed(fold(records), day, known_at) == indexed(kept, day, LATER)
    assert statements(view(fold(records), day, known_at)) == statements(view(kept, day, LATER))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), whole=st.sampled_from([0, 32, 4096]))
def test_a_sorted_index_walks_like_a_filter_of_every_version(data: st.DataObject, whole: int) -> None:
    """Below any cut and date: the versions created before the cut and not yet superseded, greatest first."""
    kept, index.WHOLE = index.WHOLE, whole  # with and without the single run, below and beyond its cap
    try:
        found = Sorted()
        versions: list[tuple[int, Version]] = []
        created = 0
        for n in range(data.draw(st.integers(0, 300))):
            created += data.draw(st.integers(1, 3))
            version = Version(fact=n, created=created)
            if data.draw(st.integers(0, 4)) == 0:
                version.superseded = created + data.draw(st.integers(1, 40))
            key = sort_key(EPOCH + dt.timedelta(days=data.draw(st.integers(0, 60))), data.draw(st.integers(0, 500)))
            found.add(key, version)
            versions.append((key | n, version))
        for _ in range(5):
            cut = data.draw(st.integers(0, created + 2))
            limit = bound(EPOCH + dt.timedelta(days=data.draw(st.integers(-1, 61))))
            expected = [
                v.fact for k, v in sorted(versions, key=lambda pair: pair[0], reverse=True)
                if v.created < cut <= v.superseded and k < limit
            ]
            assert [v.fact for v in found.below(cut, limit)] == expected
            first = found.first(cut, limit)
            assert (first.fact if first else None) == (expected[0] if expected else None)
    finally:
        index.WHOLE = kept


# --- regressions ----------------------------------------------------------------------------------


def _recorded(events: Sequence[Event], *, minutes: Sequence[int] | None = None) -> list[Recorded]:
    return [
        Recorded(
            originator_id=stream_id(NEGOTIATION),
            originator_version=n + 1,
            event_id=str(uuid.UUID(int=n + 1)),
            negotiation_id=NEGOTIATION,
            recorded_at=RECORDED_FROM + dt.timedelta(minutes=minutes[n] if minutes else n),
            recorded_by="editor@parley.test",
            request_id="r",
            event=event,
        )
        for n, event in enumerate(events)
    ]


def _tariff(on: dt.date, rate: float, **fields: Any) -> MeasureChanged:
    return MeasureChanged(
        occurred_on=on, measure_id=fields.pop("measure_id", "duty"), kind="tariff", status=fields.pop("status", "in_force"),
        imposed_by="US", applies_to="CN", legal_basis="IEEPA", rate_pct=rate, **fields,
    )


def test_a_clock_that_went_back_still_gives_the_known_at_answer() -> None:
    # The second record's clock is earlier than the first's: known at 00:30 means the second only.
    records = _recorded([_tariff(EPOCH, 10), _tariff(EPOCH + _DAY, 20)], minutes=[60, 0])
    state = fold(records)
    at = RECORDED_FROM + dt.timedelta(minutes=30)
    (direction,) = tariff_schedule(view(state, EPOCH + 5 * _DAY, at)).directions
    assert [m.rate_pct for m in direction.measures] == [20]
    for known_at in (at, LATER, RECORDED_FROM - _DAY, RECORDED_FROM + dt.timedelta(minutes=60)):
        assert_same(state, EPOCH + 5 * _DAY, known_at)


def test_a_correction_that_moves_an_event_to_another_measure_and_date() -> None:
    first = _tariff(EPOCH, 10)
    records = _recorded([first, EventCorrected(occurred_on=EPOCH, target=str(uuid.UUID(int=1)),
                                               replacement=_tariff(EPOCH + 40 * _DAY, 30, measure_id="other"))])
    state = fold(records)
    for day in (EPOCH, EPOCH + 50 * _DAY):
        for known_at in (records[0].recorded_at, LATER):
            assert_same(state, day, known_at)
    (direction,) = tariff_schedule(view(state, EPOCH + 50 * _DAY, LATER)).directions
    assert [(m.measure_id, m.rate_pct) for m in direction.measures] == [("other", 30)]


def test_an_old_state_keeps_its_answer_while_the_ledger_grows() -> None:
    records = _recorded([_tariff(EPOCH + n * _DAY, n) for n in range(1, 100)])
    old = fold(records[:50])
    before = indexed(old, EPOCH + 200 * _DAY, LATER)
    fold(records[50:], old)  # the same ledger, extended
    assert indexed(old, EPOCH + 200 * _DAY, LATER) == before
    assert before["tariffs"].directions[0].measures[0].rate_pct == 50


@pytest.mark.parametrize("size", [200, 4000])
def test_a_query_reads_a_bounded_number_of_facts_however_long_the_history(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate steps, suspensions until an extended deadline, scheduled changes: reads stay flat."""
    events: list[Event] = [DeadlineSet(occurred_on=EPOCH, deadline_id="expiry", title="Truce", due_on=EPOCH + 90 * _DAY)]
    for n in range(1, size):
        on = EPOCH + n * _DAY
        match n % 4:
            case 0:
                events.append(_tariff(on, n % 50, measure_id=f"m{n % 8}"))
            case 1:
                events.append(_tariff(on, 10, measure_id=f"m{n % 8}", status="suspended", until_deadline="expiry"))
            case 2:
                events.append(_tariff(on, n % 30, measure_id=f"m{n % 8}", effective_from=on + 20 * _DAY))
            case 3:
                if n % 40 == 3:
                    events.append(DeadlineExtended(occurred_on=on, deadline_id="expiry", due_on=EPOCH + (n + 90) * _DAY))
                else:
                    events.append(StatementMade(occurred_on=on, speaker=Person(name="X"), quote="q"))
    state = fold(_recorded(events))
    reads = 0
    below = Sorted.below

    def counted(self: Sorted, cut: int, limit: int):  # type: ignore[no-untyped-def]
        nonlocal reads
        for version in below(self, cut, limit):
            reads += 1
            yield version

    monkeypatch.setattr(Sorted, "below", counted)
    as_of = EPOCH + (size // 2) * _DAY
    answer = indexed(state, as_of, LATER)
    assert answer["tariffs"].directions
    # 8 measures and one deadline: a few reads each, plus the extension chain (part of the answer).
    chain = len(answer["deadlines"].upcoming[0].extensions) if answer["deadlines"].upcoming else 0
    assert reads <= 60 + 2 * chain, (reads, chain)
    assert answer == reference(state, as_of, LATER)
