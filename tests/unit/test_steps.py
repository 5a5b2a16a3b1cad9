"""Answers kept per step of as_of (projections.state.entity_step) follow every event that can change them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from events.payloads import DeadlineExtended, DeadlineSet, Event, EventCorrected, IssueRaised, IssueUpdated, MeasureChanged, Suspension, TruceAgreed
from events.records import Recorded, stream_id
from projections import fold, issues, measures, tariff_schedule, view

NEGOTIATION = "steps"
RECORDED_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DAY = dt.date(2025, 3, 10)


def record(events: list[Event], start: int = 0) -> list[Recorded]:
    return [
        Recorded(
            originator_id=stream_id(NEGOTIATION), originator_version=start + n, event_id=str(uuid.UUID(int=start + n)),
            negotiation_id=NEGOTIATION, recorded_at=RECORDED_FROM + dt.timedelta(minutes=start + n),
            recorded_by="editor@parley.test", request_id=f"r{start + n}", event=event,
        )
        for n, event in enumerate(events, start=1)
    ]


def answers(state: Any, as_of: dt.date = DAY, known_at: dt.datetime = NOW) -> tuple[Any, ...]:
    seen = view(state, as_of, known_at)
    return tariff_schedule(seen), measures(seen), issues(seen)


def suspended_until(deadline_id: str) -> list[Event]:
    return [
        DeadlineSet(occurred_on=dt.date(2025, 1, 5), deadline_id=deadline_id, title="truce expiry", due_on=dt.date(2025, 3, 1)),
        MeasureChanged(occurred_on=dt.date(2025, 1, 1), measure_id="duty", kind="tariff", status="in_force", imposed_by="US",
                       applies_to="CN", rate_pct=30.0),
        MeasureChanged(occurred_on=dt.date(2025, 1, 6), measure_id="duty", kind="tariff", status="suspended", imposed_by="US",
                       applies_to="CN", until_deadline=deadline_id, suspended_points=20.0, rate_pct=10.0),
        MeasureChanged(occurred_on=dt.date(2025, 1, 2), measure_id="curbs", kind="export_control", status="in_force",
                       imposed_by="US", applies_to="CN", until_deadline=deadline_id),
        IssueRaised(occurred_on=dt.date(2025, 1, 3), issue_id="exit-bans", title="Exit bans", status="open"),
    ]


def test_a_deadline_extended_later_moves_a_kept_answer_about_a_measure() -> None:
    first = record(suspended_until("expiry"))
    state = fold(first)
    lapsed = answers(state)  # kept for the measures' step around 10 March: the suspension ran out on 1 March
    assert lapsed[1].measures[0].status == "expired"
    extension = record([DeadlineExtended(occurred_on=dt.date(2025, 2, 20), deadline_id="expiry", due_on=dt.date(2025, 6, 1))], len(first))
    state = fold(extension, state)
    assert answers(state) == answers(fold(first + extension))  # as a fresh fold says
    assert answers(state)[1].measures[0].status == "in_force"
    assert answers(state, known_at=extension[0].recorded_at - dt.timedelta(seconds=1)) == lapsed  # as known before


def test_a_truce_agreed_later_moves_a_kept_rate_on_lapse() -> None:
    first = record(suspended_until("expiry"))
    state = fold(first)
    answers(state, DAY)
    truce = record([TruceAgreed(occurred_on=dt.date(2025, 1, 6), truce_id="t", deadline_id="expiry", suspends=(Suspension(measure_id="duty", lapse_rate_pct=34.0),))],
                   len(first))
    state = fold(truce, state)
    assert answers(state) == answers(fold(first + truce))
    assert answers(state)[0].directions[0].total_additional_pct == 34.0  # the rate the lapse brings back


def test_a_correction_moves_a_kept_answer_and_other_events_leave_it_kept() -> None:
    first = record(suspended_until("expiry"))
    state = fold(first)
    before = answers(state)
    unrelated = record([IssueUpdated(occurred_on=dt.date(2025, 1, 4), issue_id="tiktok", status="in_negotiation", title="TikTok")], len(first))
    state = fold(unrelated, state)
    after = answers(state)
    assert after[:2] == before[:2] and after == answers(fold(first + unrelated))
    # the same answer object: an event about another entity left the measure's answer kept
    assert after[1].measures[0] is before[1].measures[0]
    corrected = record([EventCorrected(occurred_on=dt.date(2025, 1, 7), target=first[1].event_id, replacement=MeasureChanged(
        occurred_on=dt.date(2025, 1, 1), measure_id="duty", kind="tariff", status="in_force", imposed_by="US", applies_to="CN", rate_pct=45.0))],
        len(first) + 1)
    state = fold(corrected, state)
    assert answers(state) == answers(fold(first + unrelated + corrected))
