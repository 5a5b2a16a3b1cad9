"""The `agreements` part: agreements reached by as_of, as known at known_at, each as last reported."""

from __future__ import annotations

import datetime as dt

from events import datasets
from events.payloads import AgreementReached, EventCorrected, Organisation
from projections import fold, view
from projections.agreements import agreements
from tests.unit.recording import Stream

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def reached(state, as_of: str) -> dict:
    return {a.agreement_id: a for a in agreements(view(state, dt.date.fromisoformat(as_of), NOW)).agreements}


def test_the_shipped_record_lists_each_agreement_from_the_day_it_was_reached() -> None:
    stream = Stream("us-china-trade-2025", START)
    for event in datasets.load("us-china-trade-2025"):
        stream.add(event)
    state = fold(stream.records)
    assert list(reached(state, "2025-05-11")) == []
    assert list(reached(state, "2025-05-12")) == ["geneva-joint-statement"]
    assert list(reached(state, "2025-11-01")) == [
        "geneva-joint-statement", "london-framework", "stockholm-joint-statement", "tiktok-framework",
        "kuala-lumpur-joint-arrangement",
    ]
    latest = reached(state, "2026-01-01")
    venture = latest["tiktok-usds-joint-venture"]
    assert venture.reached_on == dt.date(2025, 12, 18) and venture.signed_on == dt.date(2025, 12, 18)
    assert any(isinstance(p, Organisation) and p.name == "Oracle" for p in venture.parties)
    assert venture.because and latest["london-framework"].signed_on is None


def test_a_correction_changes_the_agreement_from_when_it_was_recorded() -> None:
    stream = Stream("talks", START)
    first = AgreementReached(occurred_on=dt.date(2025, 6, 27), agreement_id="london", title="London framework", parties=("US", "CN"))
    target = stream.add(first)
    recorded_before_the_fix = stream.clock
    signed = AgreementReached(
        occurred_on=dt.date(2025, 6, 27), agreement_id="london", title="London framework", parties=("US", "CN"),
        signed_on=dt.date(2025, 6, 27),
    )
    stream.add(EventCorrected(occurred_on=dt.date(2025, 6, 28), target=target, replacement=signed))
    state = fold(stream.records)
    (now,) = agreements(view(state, dt.date(2025, 7, 1), NOW)).agreements
    assert now.signed_on == dt.date(2025, 6, 27) and len(now.because) == 2
    (then,) = agreements(view(state, dt.date(2025, 7, 1), recorded_before_the_fix)).agreements
    assert then.signed_on is None
