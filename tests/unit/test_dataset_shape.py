"""Shape of the shipped `us-china-trade-2025` dataset: every line is a valid client event."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import uuid

import msgspec
import pytest

from events.payloads import RESERVED_FIELDS, AnyEvent, MeasureChanged, NegotiationOpened
from events.records import Recorded
from projections import fold, tariff_schedule, truce, view

DATASET = "us-china-trade-2025.jsonl"


def _lines() -> list[str]:
    text = importlib.resources.files("events.datasets").joinpath(DATASET).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return _lines()


@pytest.fixture(scope="module")
def events(lines: list[str]) -> list:
    return [msgspec.json.decode(line, type=AnyEvent) for line in lines]


def test_every_line_decodes_to_an_event(lines: list[str]) -> None:
    for number, line in enumerate(lines, start=1):
        try:
            msgspec.json.decode(line, type=AnyEvent)
        except msgspec.ValidationError as exc:  # pragma: no cover - failure message only
            pytest.fail(f"line {number}: {exc}")


def test_no_server_fields(lines: list[str]) -> None:
    for number, line in enumerate(lines, start=1):
        raw = json.loads(line)
        assert not RESERVED_FIELDS & raw.keys(), f"line {number} carries server fields"


def test_first_event_opens_the_negotiation(events: list) -> None:
    first = events[0]
    assert isinstance(first, NegotiationOpened)
    assert first.title == "US–China trade talks 2025"
    assert first.parties == ("US", "CN")
    assert first.source is not None


def test_at_least_forty_events_covering_feb_to_aug_2025(events: list) -> None:
    assert len(events) >= 40
    months = {(e.occurred_on.year, e.occurred_on.month) for e in events}
    assert {(2025, m) for m in range(2, 9)} <= months


def test_every_event_has_a_named_dated_source(events: list) -> None:
    for number, event in enumerate(events, start=1):
        assert event.source is not None, f"line {number} has no source"
        assert event.source.name, f"line {number} source has no name"
        assert event.source.published_at is not None, f"line {number} source has no published_at"


def test_lines_are_in_world_order(events: list) -> None:
    dates = [e.occurred_on for e in events]
    assert dates == sorted(dates)


def _changes(events: list, measure_id: str) -> list[MeasureChanged]:
    return [e for e in events if isinstance(e, MeasureChanged) and e.measure_id == measure_id]


def test_fentanyl_tariff_steps(events: list) -> None:
    steps = [(c.rate_pct, c.effective_from) for c in _changes(events, "us-ieepa-fentanyl-cn")]
    assert (10, dt.date(2025, 2, 4)) in steps
    assert (20, dt.date(2025, 3, 4)) in steps
    assert all(c.legal_basis == "IEEPA" for c in _changes(events, "us-ieepa-fentanyl-cn"))


def test_reciprocal_tariff_steps(events: list) -> None:
    changes = _changes(events, "us-ieepa-reciprocal-cn")
    steps = {(c.occurred_on, c.status, c.rate_pct, c.effective_from, c.until_deadline) for c in changes}
    d = dt.date
    assert (d(2025, 4, 2), "in_force", 34, d(2025, 4, 9), None) in steps
    assert (d(2025, 4, 8), "in_force", 84, d(2025, 4, 9), None) in steps
    assert (d(2025, 4, 9), "in_force", 125, d(2025, 4, 10), None) in steps
    assert (d(2025, 5, 12), "in_force", 34, d(2025, 5, 14), None) in steps
    assert (d(2025, 5, 12), "suspended", 10, d(2025, 5, 14), "truce-expiry") in steps
    assert all(c.legal_basis == "IEEPA" for c in changes)


# --- the state the shipped dataset gives, through the real folds ------------------------


@pytest.fixture(scope="module")
def recorded(events: list) -> list[Recorded]:
    """The dataset as if each event had been recorded at the end of the day it occurred."""
    stream = uuid.uuid4()
    return [
        Recorded(
            originator_id=stream,
            originator_version=n,
            event_id=str(uuid.uuid4()),
            negotiation_id="us-china-trade-2025",
            recorded_at=dt.datetime.combine(e.occurred_on, dt.time(23, 0), dt.UTC) + dt.timedelta(microseconds=n),
            recorded_by="dataset",
            request_id="test",
            event=e,
        )
        for n, e in enumerate(events, start=1)
    ]


def _rates(recorded: list[Recorded], on: dt.date, known_at: dt.datetime | None = None) -> dict[str, dict[str, float]]:
    """measure_id -> rate in force, per direction, on `on`."""
    schedule = tariff_schedule(view(fold(recorded), on, known_at or dt.datetime(2030, 1, 1, tzinfo=dt.UTC)))
    return {
        f"{d.imposed_by}->{d.applies_to}": {m.measure_id: m.rate_pct or 0 for m in d.measures} for d in schedule.directions
    }


def _ieepa_total(recorded: list[Recorded], on: dt.date, known_at: dt.datetime | None = None) -> float:
    schedule = tariff_schedule(view(fold(recorded), on, known_at or dt.datetime(2030, 1, 1, tzinfo=dt.UTC)), legal_basis="IEEPA")
    return next((d.total_additional_pct for d in schedule.directions if (d.imposed_by, d.applies_to) == ("US", "CN")), 0)


@pytest.mark.parametrize(
    ("on", "total"),
    [
        (dt.date(2025, 2, 3), 0),
        (dt.date(2025, 2, 4), 10),
        (dt.date(2025, 3, 3), 10),
        (dt.date(2025, 3, 4), 20),
        (dt.date(2025, 4, 9), 104),
        (dt.date(2025, 4, 10), 145),
        (dt.date(2025, 5, 13), 145),
        (dt.date(2025, 5, 14), 30),
        (dt.date(2025, 8, 13), 30),
        (dt.date(2025, 11, 10), 30),
        (dt.date(2025, 11, 11), 54),
    ],
)
def test_us_ieepa_total_on_china(recorded: list[Recorded], on: dt.date, total: float) -> None:
    assert _ieepa_total(recorded, on) == total


def test_lapse_brings_back_34_not_145(recorded: list[Recorded]) -> None:
    # As the record stood on 10 Aug (before the extension), the suspension ran out after 12 Aug.
    before = dt.datetime(2025, 8, 10, 23, 59, tzinfo=dt.UTC)
    rates = _rates(recorded, dt.date(2025, 8, 13), known_at=before)
    assert rates["US->CN"]["us-ieepa-reciprocal-cn"] == 34
    assert rates["CN->US"]["cn-tariff-commission-counter-us"] == 34
    assert _ieepa_total(recorded, dt.date(2025, 8, 13), known_at=before) == 54
    # With the 11 Aug extension the 10% holds through 10 Nov.
    assert _rates(recorded, dt.date(2025, 11, 10))["US->CN"]["us-ieepa-reciprocal-cn"] == 10
    assert _rates(recorded, dt.date(2025, 11, 11))["US->CN"]["us-ieepa-reciprocal-cn"] == 34


@pytest.mark.parametrize(
    ("on", "rate"),
    [(dt.date(2025, 4, 10), 84), (dt.date(2025, 4, 12), 125), (dt.date(2025, 5, 14), 10)],
)
def test_china_counter_tariff(recorded: list[Recorded], on: dt.date, rate: float) -> None:
    assert _rates(recorded, on)["CN->US"]["cn-tariff-commission-counter-us"] == rate


def test_truce_as_of_dates(recorded: list[Recorded]) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    july = truce(view(fold(recorded), dt.date(2025, 7, 28), now))
    assert (july.status, july.expires_on, july.days_remaining) == ("active", dt.date(2025, 8, 12), 15)
    august = truce(view(fold(recorded), dt.date(2025, 8, 20), now))
    assert (august.status, august.expires_on) == ("active", dt.date(2025, 11, 10))


def test_truce_and_deadline_chain(events: list) -> None:
    by_type = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    agreed = [t for t in by_type["truce_agreed"] if t.truce_id == "geneva-truce"]
    assert agreed and agreed[0].deadline_id == "truce-expiry"
    assert any(t.truce_id == "geneva-truce" for t in by_type["truce_extended"])
    assert any(d.deadline_id == "truce-expiry" and d.due_on == dt.date(2025, 8, 12) for d in by_type["deadline_set"])
    assert any(
        d.deadline_id == "truce-expiry" and d.due_on == dt.date(2025, 11, 10) for d in by_type["deadline_extended"]
    )
    rounds = {r.location.split(" ")[0] for r in by_type["round_held"]}
    assert {"Geneva", "London", "Stockholm"} <= rounds


def test_seed_claims_are_attributed_claims(events: list) -> None:
    claims = {
        (e.claim.subject, e.claim.value): e.speaker.name
        for e in events
        if e.type == "statement_made" and e.claim is not None
    }
    assert ("us.tariff_on_lapse_pct", "145") in claims
    assert claims[("truce.extension", "agreed")] == "Li Chenggang"
    assert claims[("truce.extension", "not_agreed")] == "Scott Bessent"
    issues = {e.issue_id for e in events if e.type == "issue_raised"}
    assert {"tiktok-spinoff", "exit-bans", "entity-list", "rare-earths", "russia-iran-oil"} <= issues


@pytest.mark.parametrize(
    ("on", "us_on_cn", "cn_on_us"),
    [(dt.date(2025, 4, 12), 145, 125), (dt.date(2025, 5, 14), 30, 10), (dt.date(2025, 11, 11), 54, 34)],
)
def test_direction_totals_count_only_duties_on_all_goods(recorded: list[Recorded], on: dt.date, us_on_cn: float, cn_on_us: float) -> None:
    schedule = tariff_schedule(view(fold(recorded), on, dt.datetime(2030, 1, 1, tzinfo=dt.UTC)))
    totals = {(d.imposed_by, d.applies_to): d for d in schedule.directions}
    assert totals["US", "CN"].total_additional_pct == us_on_cn
    assert totals["CN", "US"].total_additional_pct == cn_on_us
    # the product-specific lines are listed, marked partial, and not added
    partial = [m for m in totals["US", "CN"].measures if m.coverage == "partial"]
    assert {m.measure_id for m in partial} >= {"us-301-semiconductors-cn"}
    # every figure traces back to a sourced event
    by_id = {r.event_id: r.event for r in recorded}
    for direction in schedule.directions:
        for measure in direction.measures:
            assert measure.because and all(by_id[i].source and by_id[i].source.name for i in measure.because)
