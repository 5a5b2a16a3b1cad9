"""The `rounds` read model: negotiating rounds scheduled or held, as last reported."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Literal

from msgspec import Struct

from events.payloads import Person, RoundHeld, RoundScheduled
from projections import registry
from projections.index import Sorted
from projections.state import Fact, Scope, View, because_of, entity_step, first_given, scope


class RoundView(Struct, frozen=True, kw_only=True):
    round_id: str
    name: str
    status: Literal["scheduled", "held"]
    location: str | None
    starts_on: dt.date
    ends_on: dt.date | None
    delegations: dict[str, tuple[Person, ...]]
    outcome: str | None
    because: tuple[str, ...]


class RoundsView(Struct, frozen=True, kw_only=True):
    rounds: tuple[RoundView, ...]


def _round(seen: Scope, round_id: str, index: Sorted) -> RoundView | None:
    facts: list[Fact[RoundScheduled | RoundHeld]] = seen.world_order(index)
    if not facts:
        return None
    latest = facts[-1].event
    return RoundView(
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


def rounds(view: View) -> RoundsView:
    seen = scope(view)
    found = [
        found
        for round_id, index in list(seen.entities.of("rounds").items())
        if (found := entity_step(seen, "rounds", round_id, functools.partial(_round, seen, round_id, index))) is not None
    ]
    return RoundsView(rounds=tuple(sorted(found, key=lambda r: (r.starts_on, r.round_id))))


registry.register(registry.ReadModel(
    name="rounds",
    folds=(RoundScheduled, RoundHeld),
    answer=lambda view, _: rounds(view),
    answer_type=RoundsView,
    entity=lambda event: event.round_id,
    id_field="round_id",
    listed=lambda part: part["rounds"],
    items=lambda part: part.rounds,
    order=60,
))
