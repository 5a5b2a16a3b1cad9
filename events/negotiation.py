"""The negotiation's write rules: a pure `decide` over the state folded by `evolve`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence

from events.errors import (
    EventRejectedError,
    NegotiationExistsError,
    NegotiationNotFoundError,
)
from events.payloads import AnyEvent, EventCorrected, EventRetracted, NegotiationOpened
from events.records import Recorded


@dataclasses.dataclass(frozen=True)
class Negotiation:
    """What the write side needs to know of one negotiation's stream."""

    negotiation_id: str
    title: str
    parties: tuple[str, ...]
    description: str | None
    opened_by: str
    opened_at: dt.datetime
    version: int = 0
    event_count: int = 0
    first_occurred_on: dt.date | None = None
    last_occurred_on: dt.date | None = None
    last_recorded_at: dt.datetime | None = None
    # event_id -> type tag, for the events of this stream
    types: dict[str, str] = dataclasses.field(default_factory=dict)
    retracted: frozenset[str] = frozenset()


def evolve(state: Negotiation | None, record: Recorded) -> Negotiation:
    event = record.event
    if state is None:
        if not isinstance(event, NegotiationOpened):
            raise ValueError(f"stream {record.negotiation_id} does not start with negotiation_opened")
        state = Negotiation(
            negotiation_id=record.negotiation_id,
            title=event.title,
            parties=event.parties,
            description=event.description,
            opened_by=record.recorded_by,
            opened_at=record.recorded_at,
        )
    occurred = event.occurred_on
    types = state.types
    types[record.event_id] = event.type  # owned by this fold; copies would make folds O(n^2)
    return dataclasses.replace(
        state,
        version=record.originator_version,
        event_count=state.event_count + 1,
        first_occurred_on=min(occurred, state.first_occurred_on or occurred),
        last_occurred_on=max(occurred, state.last_occurred_on or occurred),
        last_recorded_at=record.recorded_at,
        retracted=state.retracted | {event.target} if isinstance(event, EventRetracted) else state.retracted,
    )


def fold(records: Iterable[Recorded], state: Negotiation | None = None) -> Negotiation | None:
    for record in records:
        state = evolve(state, record)
    return state


def decide(
    state: Negotiation | None,
    negotiation_id: str,
    events: Sequence[AnyEvent],
    *,
    located: dict[str, str] | None = None,
) -> None:
    """Raise the first rule the batch breaks; `located` maps foreign event ids to their negotiation."""
    opening = [i for i, e in enumerate(events) if isinstance(e, NegotiationOpened)]
    if state is None:
        if opening != [0]:
            raise NegotiationNotFoundError(negotiation_id)
    elif opening:
        raise NegotiationExistsError(negotiation_id)

    known = state.types if state else {}
    retracted = set(state.retracted) if state else set()
    for index, event in enumerate(events):
        field = f"events[{index}].target" if len(events) > 1 else "target"
        if isinstance(event, (EventCorrected, EventRetracted)):
            target_type = known.get(event.target)
            if target_type is None:
                elsewhere = (located or {}).get(event.target)
                if elsewhere is not None:
                    raise EventRejectedError(
                        field, f"event {event.target} belongs to negotiation {elsewhere!r}, not {negotiation_id!r}"
                    )
                raise EventRejectedError(field, f"no event {event.target} in negotiation {negotiation_id!r}")
            if target_type in ("event_corrected", "event_retracted"):
                raise EventRejectedError(field, "corrections and retractions cannot themselves be corrected")
            if event.target in retracted:
                raise EventRejectedError(field, f"event {event.target} is already retracted")
            if isinstance(event, EventCorrected) and event.replacement.type != target_type:
                raise EventRejectedError(
                    f"{field.removesuffix('target')}replacement.type",
                    f"must be {target_type!r}, the type of the corrected event",
                )
            if isinstance(event, EventRetracted):
                retracted.add(event.target)


def correction_targets(events: Sequence[AnyEvent]) -> list[str]:
    return [e.target for e in events if isinstance(e, (EventCorrected, EventRetracted))]
