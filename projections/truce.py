"""The `truce` read model: a truce lives until its deadline, wherever extensions have moved it."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from msgspec import Struct

from events.payloads import Suspension, TruceAgreed, TruceEnded, TruceExtended
from projections import registry
from projections.deadlines import DeadlineBook, Ends, Extension, deadline_book, extensions
from projections.state import Fact, View, because_of, memo, scope

# pending: agreed, not yet effective on as_of
TruceStatus = Literal["none", "pending", "active", "lapsed", "ended"]


class TruceView(Struct, frozen=True, kw_only=True):
    status: TruceStatus
    truce_id: str | None = None
    parties: tuple[str, ...] = ()
    effective_from: dt.date | None = None
    deadline_id: str | None = None
    # the deadline's due date, how that date ends the truce, and the first day after it
    expires_on: dt.date | None = None
    ends: Ends | None = None
    lapses_on: dt.date | None = None
    days_remaining: int | None = None
    ended_on: dt.date | None = None
    extensions: tuple[Extension, ...] = ()
    suspends: tuple[str, ...] = ()
    # per suspended measure, the rate on lapse and the points suspended, where the truce names them
    suspensions: tuple[Suspension, ...] = ()
    because: tuple[str, ...] = ()


TruceFact = Fact[TruceAgreed | TruceExtended | TruceEnded]


def _truce_view(facts: list[TruceFact], book: DeadlineBook, as_of: dt.date) -> TruceView:
    first = next((f for f in facts if isinstance(f.event, TruceAgreed)), facts[0]).event
    effective_from = first.effective_from or first.occurred_on
    deadline_id = next((f.event.deadline_id for f in reversed(facts) if f.event.deadline_id), None)
    due = book.due(deadline_id, as_of) if deadline_id else None
    expires_on = due.on if due else None
    ended_on = next((f.occurred_on for f in facts if isinstance(f.event, TruceEnded)), None)
    status: TruceStatus
    if ended_on is not None:
        status = "ended"
    elif as_of < effective_from:
        status = "pending"
    elif due is None or as_of < due.lapses_on:
        status = "active"
    else:
        status = "lapsed"
    return TruceView(
        status=status,
        truce_id=first.truce_id,
        parties=tuple(dict.fromkeys(p for f in facts for p in f.event.parties)),
        effective_from=effective_from,
        deadline_id=deadline_id,
        expires_on=expires_on,
        ends=due.ends if due else None,
        lapses_on=due.lapses_on if due else None,
        days_remaining=(expires_on - as_of).days if expires_on and status in ("pending", "active") else None,
        ended_on=ended_on,
        extensions=extensions(book, deadline_id, as_of) if deadline_id else (),
        suspends=tuple(dict.fromkeys(m for f in facts for m in f.event.suspended_ids)),
        suspensions=suspensions(facts),
        because=because_of(*(f.because for f in facts), due.because if due else ()),
    )


def suspensions(facts: list[TruceFact]) -> tuple[Suspension, ...]:
    """Per measure a truce names with terms, the latest rate on lapse and points suspended it gave (world order)."""
    found: dict[str, Suspension] = {}
    for fact in facts:
        for named in fact.event.suspends:
            if isinstance(named, Suspension):
                before = found.get(named.measure_id)
                found[named.measure_id] = Suspension(
                    measure_id=named.measure_id,
                    lapse_rate_pct=named.lapse_rate_pct if named.lapse_rate_pct is not None else before and before.lapse_rate_pct,
                    suspended_points=named.suspended_points
                    if named.suspended_points is not None
                    else before and before.suspended_points,
                )
    return tuple(found.values())


def truces(view: View, book: DeadlineBook | None = None) -> list[TruceView]:
    """Every truce agreed by as_of, the most recently agreed last."""
    return memo(view, "truces", lambda: _truces(view, book or deadline_book(view)))


def _truces(view: View, book: DeadlineBook) -> list[TruceView]:
    seen = scope(view)
    found: list[tuple[tuple[dt.date, int], TruceView]] = []
    for index in list(seen.entities.of("truce").values()):
        facts: list[TruceFact] = seen.world_order(index)
        if facts:
            found.append(((facts[0].occurred_on, facts[0].version), _truce_view(facts, book, view.as_of)))
    found.sort(key=lambda pair: pair[0])
    return [t for _, t in found]


def truce(view: View, truce_id: str | None = None) -> TruceView:
    """The named truce, or the one agreed most recently; status `none` when there is none."""
    found = [t for t in truces(view) if truce_id in (None, t.truce_id)]
    return found[-1] if found else TruceView(status="none", truce_id=truce_id)


registry.register(registry.ReadModel(
    name="truce",
    folds=(TruceAgreed, TruceExtended, TruceEnded),
    answer=lambda view, _: truce(view),
    answer_type=TruceView,
    entity=lambda event: event.truce_id,
    id_field="truce_id",
    order=10,
))
