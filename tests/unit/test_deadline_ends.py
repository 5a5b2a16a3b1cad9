"""How a deadline's date ends it, in what the clock sends and what calendars show: webhooks and the ICS feed."""

from __future__ import annotations

import datetime as dt
import json

import icalendar
import pytest

from events.payloads import DeadlineSet, TruceAgreed
from projections import deadlines, fold, view
from service.queries.exports import deadlines_ics
from service.webhooks.messages import calendar_messages
from tests.unit.recording import Stream

D = dt.date.fromisoformat
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def talks(ends: str | None):  # type: ignore[no-untyped-def]
    stream = Stream("talks", NOW)
    stream.add(DeadlineSet(occurred_on=D("2025-05-12"), deadline_id="truce-expiry", title="Truce expiry", due_on=D("2025-08-12"),
                           ends=ends))  # type: ignore[arg-type]
    stream.add(TruceAgreed(occurred_on=D("2025-05-12"), truce_id="geneva", effective_from=D("2025-05-14"), deadline_id="truce-expiry"))
    return fold(stream.records)


def sent(state, today: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    messages = calendar_messages(state, 2, D(today), [7, 1], NOW)
    return {m.type: json.loads(m.body)["data"] for m in messages}


@pytest.mark.parametrize(("ends", "last_day", "first_after"), [("start_of_day", "2025-08-11", "2025-08-12"), (None, "2025-08-12", "2025-08-13")])
def test_the_clock_warns_on_the_last_day_and_reports_the_lapse_on_the_first_day_after(ends, last_day, first_after) -> None:
    state = talks(ends)

    on_last_day, after = sent(state, last_day), sent(state, first_after)

    assert set(on_last_day) == {"deadline.approaching"}
    assert on_last_day["deadline.approaching"]["threshold_days"] == 1
    assert set(after) == {"deadline.passed", "truce.lapsed"}
    assert after["truce.lapsed"]["lapses_on"] == first_after
    assert after["deadline.passed"]["ends"] == (ends or "end_of_day")


def test_the_calendar_shows_a_start_of_day_deadline_on_its_last_day_and_says_when_it_ends() -> None:
    answer = deadlines(view(talks("start_of_day"), D("2025-06-01"), LATER))

    calendar = icalendar.Calendar.from_ical(deadlines_ics("talks", "Talks", answer, {}, NOW))
    (event,) = calendar.walk("VEVENT")

    assert event.decoded("DTSTART") == D("2025-08-11") and event.decoded("DTEND") == D("2025-08-12")
    assert "Ends at the start of 2025-08-12 (12:01 a.m.): 2025-08-11 is its last day." in str(event["DESCRIPTION"])
