"""The `tariff_schedule` read model: per direction, the additional duties in force, pending, and after a truce."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from msgspec import Struct

from projections.deadlines import DeadlineBook, deadline_book
from projections.measures import (
    MeasureHistory,
    PendingChange,
    counts,
    measure_histories,
    pending_changes,
    ruling,
)
from projections.state import View, because_of
from projections.truce import TruceView, truces


class MeasureRate(Struct, frozen=True, kw_only=True):
    measure_id: str
    rate_pct: float | None
    legal_basis: str | None
    # partial: on listed products only, so left out of the direction's total
    coverage: str
    since: dt.date
    because: tuple[str, ...]


class TruceLapse(Struct, frozen=True, kw_only=True):
    """What would apply the day after the truce expires if nothing else changed."""

    truce_id: str | None
    applies_from: dt.date
    total_additional_pct: float
    measures: tuple[MeasureRate, ...]
    because: tuple[str, ...]


class TariffDirection(Struct, frozen=True, kw_only=True):
    imposed_by: str
    applies_to: str
    total_additional_pct: float
    measures: tuple[MeasureRate, ...]
    pending: tuple[PendingChange, ...]
    on_truce_lapse: TruceLapse | None
    because: tuple[str, ...]


class TariffScheduleView(Struct, frozen=True, kw_only=True):
    legal_basis: str | None
    directions: tuple[TariffDirection, ...]


def _in_force(histories: Sequence[MeasureHistory], on: dt.date, book: DeadlineBook) -> tuple[MeasureRate, ...]:
    rates = []
    for history in histories:
        applying = ruling(history, on, book)
        if applying is not None and counts(applying.change.event):
            rates.append(
                MeasureRate(
                    measure_id=history.measure_id,
                    rate_pct=applying.change.event.rate_pct,
                    legal_basis=history.legal_basis,
                    coverage=applying.change.event.coverage,
                    since=applying.since,
                    because=applying.because,
                )
            )
    return tuple(rates)


def _total(rates: Sequence[MeasureRate]) -> float:
    """The additional duty on every good: product-specific lines would overstate it, so they are not added."""
    return sum(r.rate_pct or 0.0 for r in rates if r.coverage == "all")


def _touches(truce: TruceView, histories: Sequence[MeasureHistory]) -> bool:
    return any(
        h.measure_id in truce.suspends
        or (truce.deadline_id is not None and h.ends_with(truce.deadline_id))
        for h in histories
    )


def _lapse(
    histories: Sequence[MeasureHistory], running: Sequence[tuple[dt.date, TruceView]], book: DeadlineBook
) -> TruceLapse | None:
    touching = [(expires_on, t) for expires_on, t in running if _touches(t, histories)]
    if not touching:
        return None
    # The first truce to run out is the one the direction is exposed to.
    expires_on, first = min(touching, key=lambda pair: pair[0])
    applies_from = expires_on + dt.timedelta(days=1)
    rates = _in_force(histories, applies_from, book)
    return TruceLapse(
        truce_id=first.truce_id,
        applies_from=applies_from,
        total_additional_pct=_total(rates),
        measures=rates,
        because=because_of(first.because, *(r.because for r in rates)),
    )


def _matches(legal_basis: str | None, wanted: str | None) -> bool:
    return wanted is None or (legal_basis is not None and wanted.casefold() in legal_basis.casefold())


def tariff_schedule(view: View, legal_basis: str | None = None) -> TariffScheduleView:
    """Additional tariffs per direction on as_of; `legal_basis` keeps measures whose basis contains it."""
    book = deadline_book(view)
    directions: dict[tuple[str, str], list[MeasureHistory]] = {}
    for history in measure_histories(view).values():
        latest = history.latest
        if latest.kind == "tariff" and _matches(history.legal_basis, legal_basis):
            directions.setdefault((latest.imposed_by, latest.applies_to), []).append(history)
    running = [
        (t.expires_on, t) for t in truces(view, book) if t.status in ("pending", "active") and t.expires_on is not None
    ]
    schedule = []
    for (imposed_by, applies_to), histories in sorted(directions.items()):
        rates = _in_force(histories, view.as_of, book)
        schedule.append(
            TariffDirection(
                imposed_by=imposed_by,
                applies_to=applies_to,
                total_additional_pct=_total(rates),
                measures=rates,
                pending=tuple(p for h in histories for p in pending_changes(h, view.as_of, book)),
                on_truce_lapse=_lapse(histories, running, book),
                because=because_of(*(r.because for r in rates)),
            )
        )
    return TariffScheduleView(legal_basis=legal_basis, directions=tuple(schedule))
