"""Properties of the folds: world-date answers ignore recording order; a known_at answer never changes later."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events.payloads import (
    CoverageDeclared,
    DeadlineExtended,
    DeadlineSet,
    Event,
    EventCorrected,
    EventRetracted,
    ExemptionGranted,
    MeasureChanged,
    Person,
    StatementMade,
    Suspension,
    TruceAgreed,
    TruceEnded,
    TruceExtended,
)
from events.records import Recorded, stream_id
from projections import (
    State,
    deadlines,
    fold,
    measures,
    statements,
    tariff_schedule,
    truce,
    view,
)
from projections.coverage import coverage

NEGOTIATION = "properties"
EPOCH = dt.date(2025, 1, 1)
RECORDED_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DEADLINES = ("expiry", "review")


def record(events: Sequence[tuple[str, Event]], start: int = 0) -> list[Recorded]:
    """Record (event_id, payload) pairs in this order, one minute apart, from version start + 1."""
    return [
        Recorded(
            originator_id=stream_id(NEGOTIATION),
            originator_version=start + offset,
            event_id=event_id,
            negotiation_id=NEGOTIATION,
            recorded_at=RECORDED_FROM + dt.timedelta(minutes=start + offset),
            recorded_by="editor@parley.test",
            request_id=event_id,
            event=event,
        )
        for offset, (event_id, event) in enumerate(events, start=1)
    ]


def answers(state: State, as_of: dt.date, known_at: dt.datetime) -> tuple[Any, ...]:
    seen = view(state, as_of, known_at)
    return (
        tariff_schedule(seen),
        tariff_schedule(seen, legal_basis="ieepa"),
        truce(seen),
        measures(seen),
        deadlines(seen),
        statements(seen),
        coverage(seen),
    )


days = st.integers(min_value=-10, max_value=60).map(lambda n: dt.timedelta(days=n))


@st.composite
def measure_changed(draw: st.DrawFn, on: dt.date) -> MeasureChanged:
    measure_id = draw(st.sampled_from(["fentanyl", "reciprocal", "entity-list"]))
    is_tariff = measure_id != "entity-list"
    effective_from = draw(st.none() | days.map(lambda d: on + d))
    status = draw(st.sampled_from(["threatened", "announced", "in_force", "suspended", "removed", "expired", "invalidated"]))
    effective_until = draw(st.none() | days.map(lambda d: (effective_from or on) + abs(d)))
    until_deadline = draw(st.none() | st.sampled_from(DEADLINES))
    lapses = status == "suspended" and is_tariff and (effective_until or until_deadline)
    return MeasureChanged(
        occurred_on=on,
        measure_id=measure_id,
        kind="tariff" if is_tariff else "entity_listing",
        status=status,  # type: ignore[arg-type]
        imposed_by="US",
        applies_to=draw(st.sampled_from(["CN", "CN", "ALL"])),
        legal_basis=draw(st.sampled_from(["IEEPA", "Section 301"])),
        rate_pct=draw(st.none() | st.sampled_from([10, 20, 34, 125])) if is_tariff else None,
        effective_from=effective_from,
        effective_until=effective_until,
        until_deadline=until_deadline,
        lapse_rate_pct=draw(st.none() | st.sampled_from([34, 0])) if lapses else None,
    )


@st.composite
def exemption(draw: st.DrawFn, on: dt.date) -> ExemptionGranted:
    return ExemptionGranted(
        occurred_on=on, measure_id=draw(st.sampled_from(["fentanyl", "reciprocal"])), exemption_id="electronics",
        description="Phones and chips", effective_from=draw(st.none() | days.map(lambda d: on + d)),
    )


@st.composite
def deadline_event(draw: st.DrawFn, on: dt.date) -> Event:
    deadline_id = draw(st.sampled_from(DEADLINES))
    due_on = on + abs(draw(days)) * 2
    ends = draw(st.sampled_from([None, "start_of_day", "end_of_day"]))
    if draw(st.booleans()):
        return DeadlineSet(occurred_on=on, deadline_id=deadline_id, title="Expiry", due_on=due_on, ends=ends)
    return DeadlineExtended(occurred_on=on, deadline_id=deadline_id, due_on=due_on, ends=ends)


@st.composite
def truce_event(draw: st.DrawFn, on: dt.date) -> Event:
    kind = draw(st.sampled_from([TruceAgreed, TruceExtended, TruceEnded]))
    return kind(
        occurred_on=on,
        truce_id=draw(st.sampled_from(["geneva", "london"])),
        effective_from=draw(st.none() | days.map(lambda d: on + abs(d))),
        deadline_id=draw(st.none() | st.sampled_from(DEADLINES)),
        suspends=draw(st.sampled_from([(), ("reciprocal",), (Suspension(measure_id="reciprocal", lapse_rate_pct=34),)])),
    )


@st.composite
def statement(draw: st.DrawFn, on: dt.date) -> Event:
    if draw(st.integers(0, 4)) == 0:
        return CoverageDeclared(occurred_on=on, record_through=on - abs(draw(days)))
    speaker = draw(st.sampled_from([Person(name="Li Chenggang", party="CN"), Person(name="Scott Bessent", party="US")]))
    return StatementMade(occurred_on=on, speaker=speaker, quote=draw(st.sampled_from(["agreed", "not agreed"])))


EVENT_KINDS: tuple[Callable[[dt.date], st.SearchStrategy[Event]], ...] = (
    measure_changed,
    measure_changed,
    exemption,
    deadline_event,
    truce_event,
    statement,
)


@st.composite
def timeline(draw: st.DrawFn, *, distinct_dates: bool) -> list[Event]:
    offsets = st.integers(min_value=0, max_value=150)
    dates = draw(st.lists(offsets, min_size=1, max_size=14, unique=distinct_dates))
    return [draw(draw(st.sampled_from(EVENT_KINDS))(EPOCH + dt.timedelta(days=n))) for n in dates]


def with_ids(events: Sequence[Event], batch: int) -> list[tuple[str, Event]]:
    # Deterministic ids keep hypothesis' replays identical.
    return [(str(uuid.UUID(int=batch << 64 | i)), event) for i, event in enumerate(events)]


as_of_dates = st.lists(
    st.integers(min_value=-5, max_value=260).map(lambda n: EPOCH + dt.timedelta(days=n)), min_size=1, max_size=4
)


@settings(max_examples=150, deadline=None)
@given(events=st.data(), as_of=as_of_dates)
def test_as_of_answers_do_not_depend_on_the_order_events_with_distinct_dates_were_recorded(
    events: st.DataObject, as_of: list[dt.date]
) -> None:
    in_world_order = with_ids(events.draw(timeline(distinct_dates=True)), batch=1)
    shuffled = events.draw(st.permutations(in_world_order))

    one, other = fold(record(in_world_order)), fold(record(shuffled))

    for day in as_of:
        assert answers(one, day, LATER) == answers(other, day, LATER)


@st.composite
def amendment(draw: st.DrawFn, earlier: list[tuple[str, Event]]) -> Event:
    target_id, target = draw(st.sampled_from(earlier))
    on = EPOCH + dt.timedelta(days=draw(st.integers(0, 150)))
    if isinstance(target, MeasureChanged) and draw(st.booleans()):
        return EventCorrected(occurred_on=on, target=target_id, replacement=draw(measure_changed(target.occurred_on)))
    return EventRetracted(occurred_on=on, target=target_id, reason="wrong")


@settings(max_examples=150, deadline=None)
@given(data=st.data(), as_of=as_of_dates)
def test_answer_known_at_a_time_never_changes_when_later_events_are_recorded(
    data: st.DataObject, as_of: list[dt.date]
) -> None:
    earlier = with_ids(data.draw(timeline(distinct_dates=False)), batch=1)
    amendments = data.draw(st.lists(amendment(earlier), max_size=6))
    later = data.draw(st.permutations(with_ids([*data.draw(timeline(distinct_dates=False)), *amendments], batch=2)))
    first = record(earlier)
    known_at = first[-1].recorded_at

    then, now = fold(first), fold(first + record(later, start=len(first)))

    for day in as_of:
        assert answers(then, day, known_at) == answers(now, day, known_at)
