"""The bitemporal fold behind every read model: `evolve` one event at a time, `view` at (as_of, known_at).

`State` keeps every recorded event, corrections and retractions beside their targets, indexed by
payload type. Time travel is a filter, never a rebuild: a view applies what was recorded by
`known_at` and what occurred by `as_of`, and each read model resolves only the types it needs;
folding by world dates lets backfills land on their own dates. A `State` sees a prefix of an
append-only ledger that later states share, so `evolve` is O(1) and any older state (a
checkpoint) keeps its answers; evolving an old state again branches off a copy. A runner can
keep one state per negotiation current and answer any (as_of, known_at) from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from events.payloads import Event, EventCorrected, EventRetracted
from events.records import Recorded

E = TypeVar("E", bound=Event)


@dataclasses.dataclass(eq=False)
class _Ledger:
    records: list[Recorded] = dataclasses.field(default_factory=list)
    # positions in `records`, ascending, so a state of size n reads the entries below n
    by_type: dict[type[Event], list[int]] = dataclasses.field(default_factory=dict)
    revisions: dict[str, list[int]] = dataclasses.field(default_factory=dict)


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
    ledger.records.append(recorded)
    event = recorded.event
    if isinstance(event, (EventCorrected, EventRetracted)):
        ledger.revisions.setdefault(event.target, []).append(position)
    else:
        ledger.by_type.setdefault(type(event), []).append(position)
    return State(
        negotiation_id=recorded.negotiation_id,
        version=recorded.originator_version,
        size=position + 1,
        _ledger=ledger,
    )


def fold(records: Iterable[Recorded], state: State | None = None) -> State:
    state = state or State()
    for recorded in records:
        state = evolve(state, recorded)
    return state


@dataclasses.dataclass(frozen=True)
class View:
    """A state seen on world date `as_of` with what was recorded by `known_at`."""

    state: State
    as_of: dt.date
    known_at: dt.datetime


def view(state: State, as_of: dt.date, known_at: dt.datetime) -> View:
    return View(state=state, as_of=as_of, known_at=known_at)


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
    return tuple(dict.fromkeys(i for group in groups for i in group))


def first_given(facts: Iterable[Fact], field: str) -> Any:
    """The first non-empty value of a payload field, so a report that leaves it out erases nothing."""
    return next((value for f in facts if (value := getattr(f.event, field))), None)


def known(view: View, *types: type[E]) -> Iterator[Fact[E]]:
    """The facts of these types recorded by `known_at` and occurring by `as_of`, in stream order."""
    state = view.state
    ledger = state._ledger
    lists = [ledger.by_type.get(t, []) for t in types]
    for position in heapq.merge(*lists):
        if position >= state.size:
            break
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


def in_world_order(view: View, *types: type[E]) -> list[Fact[E]]:
    """`known` facts sorted by when they happened, then by the order they were recorded in."""
    return sorted(known(view, *types), key=lambda f: (f.occurred_on, f.version))
