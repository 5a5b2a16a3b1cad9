"""The `tariff_schedule` read model: per direction, the additional duties in force, those not in force, pending, and after a truce."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

from msgspec import Struct

from events.payloads import ALL_DESTINATIONS, ExemptionGranted, MeasureChanged, MeasureStatus
from projections import registry
from projections.deadlines import deadline_book
from projections.measures import (
    Exemption,
    LapseRates,
    MeasureHistory,
    PendingChange,
    Ruling,
    lapse_rates,
    lifecycle,
    measure_histories,
    measure_step,
    ruling,
    suspension_terms,
)
from projections.state import View, because_of, parties
from projections.truce import TruceView, truces


class MeasureRate(Struct, frozen=True, kw_only=True):
    """A tariff line in force: its rate, since when, and whether the direction's total counts it."""

    measure_id: str
    name: str | None
    rate_pct: float | None
    legal_basis: str | None
    # in_force, or suspended: a partial suspension that keeps part of the rate
    status: MeasureStatus
    # additional: on top of the ordinary duty; all_inclusive: the whole duty, ordinary duty included
    rate_kind: str
    # all: every good; partial: listed products only, or every good but the exemptions listed
    coverage: str
    # an additional duty imposed on every good, so the total counts it (exemptions or not)
    counted: bool
    # the measure applies to every destination, this direction's among them
    all_destinations: bool
    since: dt.date
    until: dt.date | None
    lapse_rate_pct: float | None
    suspended_points: float | None
    exemptions: tuple[Exemption, ...]
    because: tuple[str, ...]


class MeasureLine(Struct, frozen=True, kw_only=True):
    """A tariff known on as_of that is not in force: threatened, announced, removed, expired or invalidated."""

    measure_id: str
    name: str | None
    status: MeasureStatus | None
    since: dt.date | None
    rate_pct: float | None
    legal_basis: str | None
    all_destinations: bool
    because: tuple[str, ...]


class TruceLapse(Struct, frozen=True, kw_only=True):
    """What would apply from the first day after the truce if nothing else changed (rates on lapse included)."""

    truce_id: str | None
    applies_from: dt.date
    total_additional_pct: float
    measures: tuple[MeasureRate, ...]
    because: tuple[str, ...]


class TariffDirection(Struct, frozen=True, kw_only=True):
    imposed_by: str
    applies_to: str
    # the additional duties (on top of the ordinary duty) in force on every good, added up
    total_additional_pct: float
    # an all-inclusive rate in force on every good (ordinary duty included: goods below it pay up to it), else None
    all_inclusive_pct: float | None
    # in force on as_of (the total adds those counted)
    measures: tuple[MeasureRate, ...]
    # every other tariff known on as_of, with its status: never counted
    not_in_force: tuple[MeasureLine, ...]
    pending: tuple[PendingChange, ...]
    on_truce_lapse: TruceLapse | None
    because: tuple[str, ...]


class TariffScheduleView(Struct, frozen=True, kw_only=True):
    legal_basis: str | None
    directions: tuple[TariffDirection, ...]


def _rate(history: MeasureHistory, applying: Ruling, on: dt.date, lapses: LapseRates, terms: tuple[float | None, float | None]) -> MeasureRate:
    change = applying.change.event
    exemptions = history.exemptions(on)
    return MeasureRate(
        measure_id=history.measure_id,
        name=history.name,
        rate_pct=applying.rate_pct,
        legal_basis=history.legal_basis,
        status=applying.status,
        rate_kind=change.rate_kind,
        coverage="partial" if change.coverage == "partial" or exemptions else "all",
        counted=change.coverage == "all" and change.rate_kind == "additional",
        all_destinations=history.latest.applies_to == ALL_DESTINATIONS,
        since=applying.since,
        until=applying.until,
        lapse_rate_pct=terms[0],
        suspended_points=terms[1],
        exemptions=exemptions,
        because=because_of(applying.because, *(e.because for e in exemptions)) if exemptions else applying.because,
    )


def _in_force(view: View, histories: Sequence[MeasureHistory], on: dt.date) -> tuple[MeasureRate, ...]:
    """The lines in force on a day after as_of (as the record stands on as_of)."""
    rates = (measure_step(view, history, ("in_force_on", on), functools.partial(_rate_on, history, view, on)) for history in histories)
    return tuple(rate for rate in rates if rate is not None)


def _rate_on(history: MeasureHistory, view: View, on: dt.date) -> MeasureRate | None:
    lapses = lapse_rates(view)
    applying = ruling(history, on, deadline_book(view), lapses)
    return _rate(history, applying, on, lapses, (None, None)) if applying is not None and applying.in_force else None


def _total(rates: Sequence[MeasureRate]) -> float:
    """The additional duty on every good: product-specific lines would overstate it, so they are not added."""
    return sum(r.rate_pct or 0.0 for r in rates if r.counted)


def _all_inclusive(rates: Sequence[MeasureRate]) -> float | None:
    """The all-inclusive rate on every good (exemptions aside), if one is in force (the highest, should two be)."""
    return max(
        (r.rate_pct for r in rates if r.rate_kind == "all_inclusive" and (r.coverage == "all" or r.exemptions) and r.rate_pct is not None),
        default=None,
    )


def _touches(truce: TruceView, histories: Sequence[MeasureHistory]) -> bool:
    return any(
        h.measure_id in truce.suspends
        or (truce.deadline_id is not None and h.ends_with(truce.deadline_id))
        for h in histories
    )


def _lapse(view: View, histories: Sequence[MeasureHistory], running: Sequence[tuple[dt.date, TruceView]]) -> TruceLapse | None:
    touching = [(lapses_on, t) for lapses_on, t in running if _touches(t, histories)]
    if not touching:
        return None
    # The first truce to run out is the one the direction is exposed to.
    applies_from, first = min(touching, key=lambda pair: pair[0])
    rates = _in_force(view, histories, applies_from)
    return TruceLapse(
        truce_id=first.truce_id,
        applies_from=applies_from,
        total_additional_pct=_total(rates),
        measures=rates,
        because=because_of(first.because, *(r.because for r in rates)),
    )


def _matches(legal_basis: str | None, wanted: str | None) -> bool:
    return wanted is None or (legal_basis is not None and wanted.casefold() in legal_basis.casefold())


def _targets(imposed_by: str, applies_to: str, known_parties: Sequence[str]) -> list[str]:
    """The directions a measure lands in: its party, or every other party of the negotiation for ALL."""
    if applies_to != ALL_DESTINATIONS:
        return [applies_to]
    return [p for p in known_parties if p != imposed_by] or [ALL_DESTINATIONS]


def _line(history: MeasureHistory, view: View) -> tuple[MeasureRate | MeasureLine, tuple[PendingChange, ...]]:
    """The measure's line on as_of, in force or not, and its pending changes."""
    book = deadline_book(view)
    lapses = lapse_rates(view)
    stage = lifecycle(history, view.as_of, book, lapses)
    if stage.ruling is not None and stage.in_force:
        return _rate(history, stage.ruling, view.as_of, lapses, suspension_terms(stage, lapses)), stage.pending
    return MeasureLine(
        measure_id=history.measure_id,
        name=history.name,
        status=stage.status,
        since=stage.since,
        rate_pct=stage.rate_pct,
        legal_basis=history.legal_basis,
        all_destinations=history.latest.applies_to == ALL_DESTINATIONS,
        because=stage.because,
    ), stage.pending


def tariff_schedule(view: View, legal_basis: str | None = None) -> TariffScheduleView:
    """Additional tariffs per direction on as_of; `legal_basis` keeps measures whose basis contains it."""
    book = deadline_book(view)
    known_parties = parties(view)
    directions: dict[tuple[str, str], list[MeasureHistory]] = {}
    for history in measure_histories(view, tariffs=True).values():
        latest = history.latest
        if _matches(history.legal_basis, legal_basis):
            for target in _targets(latest.imposed_by, latest.applies_to, known_parties):
                directions.setdefault((latest.imposed_by, target), []).append(history)
    running = [
        (t.lapses_on, t) for t in truces(view, book) if t.status in ("pending", "active") and t.lapses_on is not None
    ]
    schedule = []
    for (imposed_by, applies_to), histories in sorted(directions.items()):
        rates: list[MeasureRate] = []
        others: list[MeasureLine] = []
        pending: list[PendingChange] = []
        for history in histories:
            line, scheduled = measure_step(view, history, "tariffs", functools.partial(_line, history, view))
            pending += scheduled
            if isinstance(line, MeasureRate):
                rates.append(line)
            else:
                others.append(line)
        schedule.append(
            TariffDirection(
                imposed_by=imposed_by,
                applies_to=applies_to,
                total_additional_pct=_total(rates),
                all_inclusive_pct=_all_inclusive(rates),
                measures=tuple(rates),
                not_in_force=tuple(others),
                pending=tuple(pending),
                on_truce_lapse=_lapse(view, histories, running),
                because=because_of(*(r.because for r in rates)),
            )
        )
    return TariffScheduleView(legal_basis=legal_basis, directions=tuple(schedule))


registry.register(registry.ReadModel(
    name="tariffs",
    folds=(MeasureChanged, ExemptionGranted),
    answer=lambda view, legal_basis: tariff_schedule(view, legal_basis=legal_basis),
    answer_type=TariffScheduleView,
    listed=lambda part: part["directions"],
    items=lambda part: part.directions,
    order=20,
))
