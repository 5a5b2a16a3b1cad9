"""The shipped `us-eu-trade-2025` dataset: every line a valid, sourced event, and the state it folds to held to the record.

Expected values name the block of the record they come from (docs/record/us-eu-2025-2026.md, "block N").
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
import uuid
from pathlib import Path

import msgspec
import pytest

from events.payloads import (
    RESERVED_FIELDS,
    AgreementReached,
    AnyEvent,
    CoverageDeclared,
    DeadlineExtended,
    DeadlineSet,
    DemandMade,
    MeasureChanged,
    NegotiationOpened,
    Organisation,
    RoundHeld,
    StatementMade,
)
from events.records import Recorded
from projections import deadlines, fold, issues, tariff_schedule, truce, view
from projections.coverage import coverage
from projections.tariffs import TariffDirection

DATASET = "us-eu-trade-2025.jsonl"
NEGOTIATION = "us-eu-trade-2025"
RESEARCH = Path(__file__).resolve().parents[2] / "docs" / "record" / "us-eu-2025-2026.md"
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PARTY_CODES = {"US", "EU", "ALL"}
d = dt.date


def _lines() -> list[str]:
    text = importlib.resources.files("events.datasets").joinpath(DATASET).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return _lines()


@pytest.fixture(scope="module")
def events(lines: list[str]) -> list:
    return [msgspec.json.decode(line, type=AnyEvent) for line in lines]


@pytest.fixture(scope="module")
def recorded(events: list) -> list[Recorded]:
    """The dataset as if each event had been recorded at the end of the day it occurred."""
    stream = uuid.uuid4()
    return [
        Recorded(
            originator_id=stream,
            originator_version=n,
            event_id=str(uuid.uuid4()),
            negotiation_id=NEGOTIATION,
            recorded_at=dt.datetime.combine(e.occurred_on, dt.time(23, 0), dt.UTC) + dt.timedelta(microseconds=n),
            recorded_by="dataset",
            request_id="test",
            event=e,
        )
        for n, e in enumerate(events, start=1)
    ]


@pytest.fixture(scope="module")
def state(recorded: list[Recorded]):
    return fold(recorded)


def _directions(state, on: dt.date, known_at: dt.datetime = NOW) -> dict[tuple[str, str], TariffDirection]:
    schedule = tariff_schedule(view(state, on, known_at))
    return {(x.imposed_by, x.applies_to): x for x in schedule.directions}


def _us(state, on: dt.date, known_at: dt.datetime = NOW) -> TariffDirection:
    return _directions(state, on, known_at)["US", "EU"]


def _eu(state, on: dt.date, known_at: dt.datetime = NOW) -> TariffDirection:
    return _directions(state, on, known_at)["EU", "US"]


def _in_force(direction: TariffDirection) -> dict[str, float | None]:
    return {m.measure_id: m.rate_pct for m in direction.measures}


def _line(direction: TariffDirection, measure_id: str):
    return next(m for m in direction.measures if m.measure_id == measure_id)


def _out(direction: TariffDirection) -> dict[str, tuple[str | None, float | None]]:
    return {m.measure_id: (m.status, m.rate_pct) for m in direction.not_in_force}


def _pending(direction: TariffDirection, measure_id: str) -> list[tuple[str, float | None, dt.date]]:
    return [(p.status, p.rate_pct, p.effective_from) for p in direction.pending if p.measure_id == measure_id]


def _deadline(state, on: dt.date, deadline_id: str):
    answer = deadlines(view(state, on, NOW))
    return next(x for x in (*answer.upcoming, *answer.passed) if x.deadline_id == deadline_id)


def _issue(state, on: dt.date, issue_id: str):
    return next(i for i in issues(view(state, on, NOW)).issues if i.issue_id == issue_id)


# --- every line a valid, sourced event ------------------------------------------------------


def test_every_line_decodes_to_an_event(lines: list[str]) -> None:
    for number, line in enumerate(lines, start=1):
        try:
            msgspec.json.decode(line, type=AnyEvent)
        except msgspec.ValidationError as exc:  # pragma: no cover - failure message only
            pytest.fail(f"line {number}: {exc}")


def test_no_server_fields(lines: list[str]) -> None:
    for number, line in enumerate(lines, start=1):
        assert not RESERVED_FIELDS & json.loads(line).keys(), f"line {number} carries server fields"


def test_first_event_opens_the_negotiation_on_the_earliest_fact(events: list) -> None:
    first = events[0]
    assert isinstance(first, NegotiationOpened)
    assert first.title == "US–EU trade talks 2025"
    assert first.parties == ("US", "EU")
    assert first.description
    assert first.occurred_on == d(2025, 2, 10)  # block 1: Proclamations 10895/10896 announced
    assert first.occurred_on == min(e.occurred_on for e in events)


def test_last_event_declares_coverage(events: list) -> None:
    last = events[-1]
    assert isinstance(last, CoverageDeclared)
    assert last.record_through == d(2026, 7, 1)  # block 59: last dated report (Eurradio, 1 Jul 2026); nothing after early July
    assert last.note
    assert sum(isinstance(e, CoverageDeclared) for e in events) == 1


def test_lines_are_in_world_order(events: list) -> None:
    dates = [e.occurred_on for e in events]
    assert dates == sorted(dates)


def test_every_event_has_a_full_source_a_summary_and_topics(events: list) -> None:
    for number, event in enumerate(events, start=1):
        source = event.source
        assert source is not None, f"line {number} has no source"
        for field in ("name", "kind", "title", "published_at", "reliability", "credibility"):
            assert getattr(source, field) is not None, f"line {number} source has no {field}"
        assert event.summary and "\n" not in event.summary, f"line {number} needs a one-line summary"
        assert event.topics, f"line {number} has no topics"
        assert event.confidence in ("high", "medium"), f"line {number} confidence"


def test_every_official_source_has_its_url(events: list) -> None:
    for number, event in enumerate(events, start=1):
        if event.source.kind == "official":
            assert event.source.url, f"line {number}: an official source needs its url"


def test_high_confidence_is_official_with_url_or_confirmed(events: list) -> None:
    for number, event in enumerate(events, start=1):
        if event.confidence != "high":
            assert "Confirmed by" not in event.summary, f"line {number}: a confirmed fact should be high"
            assert event.source.credibility >= 2, f"line {number}: a single or inferred report is not confirmed"
            continue
        source = event.source
        official = source.kind == "official" and source.url is not None
        confirmed = source.credibility == 1 and "Confirmed by " in event.summary
        assert official or confirmed, f"line {number}: high confidence needs an official text or a second report"
        if official:
            assert source.reliability == "A"


def test_party_codes_and_slugs(events: list) -> None:
    slug = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
    for number, event in enumerate(events, start=1):
        assert all(slug.match(t) for t in event.topics), f"line {number} topics"
        if isinstance(event, MeasureChanged):
            assert event.imposed_by in PARTY_CODES and event.applies_to in PARTY_CODES, f"line {number}"
        if isinstance(event, StatementMade):
            assert event.speaker.party in PARTY_CODES, f"line {number}"
        if isinstance(event, DemandMade):
            assert {event.by, event.to} <= PARTY_CODES, f"line {number}"
        if isinstance(event, AgreementReached):
            codes = {p.party if isinstance(p, Organisation) else p for p in event.parties}
            assert codes <= PARTY_CODES, f"line {number}"
        if isinstance(event, RoundHeld):
            assert set(event.delegations) <= PARTY_CODES, f"line {number}"


def test_urls_are_copied_from_the_research_file_and_were_seen(events: list) -> None:
    text = RESEARCH.read_text(encoding="utf-8")
    # an address the researcher did not open is followed by "not seen" on its line
    unseen = {m.group(1) for m in re.finditer(r"(https?://[^\s)]+)[^\n]{0,12}not seen", text)}
    assert unseen, "the research file marks some addresses as not seen"
    for number, event in enumerate(events, start=1):
        url = event.source.url
        if url is not None:
            assert url in text, f"line {number}: {url} is not in the research file"
            assert url not in unseen, f"line {number}: {url} is marked not seen"


def test_most_events_carry_a_url(events: list) -> None:
    with_url = [e for e in events if e.source.url]
    assert len(events) >= 100
    assert len(with_url) == len(events) - 1  # all but the curator's coverage declaration


# --- what was encoded, as the record says it ------------------------------------------------


def _changes(events: list, measure_id: str) -> list[MeasureChanged]:
    return [e for e in events if isinstance(e, MeasureChanged) and e.measure_id == measure_id]


def test_the_eu_20_pct_was_announced_not_applied(events: list) -> None:
    steps = {(c.occurred_on, c.status, c.rate_pct, c.rate_kind, c.effective_from) for c in _changes(events, "us-ieepa-reciprocal-eu")}
    assert (d(2025, 4, 2), "in_force", 10, "additional", d(2025, 4, 5)) in steps  # block 4: 10% baseline from 5 Apr
    assert (d(2025, 4, 2), "announced", 20, "additional", d(2025, 4, 9)) in steps  # blocks 4, 7: 20% scheduled, not verified as collected
    assert (d(2025, 4, 9), "suspended", 10, "additional", d(2025, 4, 10)) in steps  # block 7: EO 14266
    assert (d(2025, 7, 31), "in_force", 15, "all_inclusive", d(2025, 8, 7)) in steps  # block 20: EO 14326
    assert (d(2026, 2, 20), "invalidated", None, "additional", d(2026, 2, 24)) in steps  # blocks 41, 46
    assert not any(c.status == "in_force" and c.rate_pct == 20 for c in _changes(events, "us-ieepa-reciprocal-eu"))


def test_the_car_cut_is_recorded_late_effective_early(events: list) -> None:
    for measure_id in ("us-232-autos-eu", "us-232-auto-parts-eu"):
        cut = [c for c in _changes(events, measure_id) if c.rate_kind == "all_inclusive"]
        assert [(c.occurred_on, c.effective_from, c.rate_pct) for c in cut] == [
            (d(2025, 9, 25), d(2025, 8, 1), 15)  # block 29: FR notice of 25 Sep, retroactive to 1 Aug
        ]
        assert all(c.coverage == "partial" for c in _changes(events, measure_id))


def test_pause_deadline_chain(events: list) -> None:
    chain = [
        (e.type, e.occurred_on, e.due_on, e.ends)
        for e in events
        if isinstance(e, (DeadlineSet, DeadlineExtended)) and e.deadline_id == "reciprocal-pause"
    ]
    assert chain == [
        ("deadline_set", d(2025, 4, 9), d(2025, 7, 9), "start_of_day"),  # block 7: until 12:01 a.m. EDT 9 Jul
        ("deadline_extended", d(2025, 7, 7), d(2025, 8, 1), "start_of_day"),  # block 13: EO 14316
        ("deadline_extended", d(2025, 7, 31), d(2025, 8, 7), "start_of_day"),  # block 20: suspension runs until the new rates
    ]


def test_threats_are_separate_measures_never_acted_on(events: list) -> None:
    threats = {
        "us-threat-eu-all-goods": {50, 30},  # blocks 10, 11, 14
        "us-threat-pharma-100": {100},  # block 30
        "us-threat-greenland": {10},  # block 34 (10% from 1 Feb, 25% from 1 Jun in its scope)
        "us-threat-122-15": {15},  # block 43
        "us-threat-autos-25-eu": {25},  # block 52
    }
    for measure_id, rates in threats.items():
        changes = _changes(events, measure_id)
        assert {c.rate_pct for c in changes if c.status == "threatened"} == rates
        # only the Greenland threat was withdrawn (block 36); nothing else but threats
        assert {c.status for c in changes} <= {"threatened", "removed"}
    assert [c.occurred_on for c in _changes(events, "us-threat-greenland") if c.status == "removed"] == [d(2026, 1, 21)]


def test_eu_countermeasures_only_announced_or_suspended(events: list) -> None:
    windows = {}
    for measure_id in ("eu-countermeasures-first-list-us", "eu-countermeasures-second-list-us"):
        changes = _changes(events, measure_id)
        assert {c.status for c in changes} <= {"announced", "suspended"}
        assert all((c.imposed_by, c.applies_to, c.coverage) == ("EU", "US", "partial") for c in changes)
        assert all(c.rate_pct is None for c in changes if c.status == "suspended")
        windows[measure_id] = [(c.effective_from, c.effective_until) for c in changes if c.status == "suspended"]
    assert windows["eu-countermeasures-first-list-us"] == [
        (None, d(2025, 4, 14)),  # block 5: 2025/664
        (d(2025, 4, 15), d(2025, 7, 14)),  # block 8: 2025/786
        (None, d(2025, 8, 6)),  # block 15: 2025/1446 of 14 Jul
        (d(2025, 8, 7), d(2026, 2, 7)),  # block 21: six months from 7 Aug
        (d(2026, 2, 7), d(2026, 8, 6)),  # block 39
    ]
    assert windows["eu-countermeasures-second-list-us"] == [
        (d(2025, 8, 7), d(2026, 2, 7)),  # block 21
        (d(2026, 2, 7), d(2026, 8, 6)),  # block 39
    ]


def test_agreements_rounds_and_section_122(events: list) -> None:
    agreements = {e.agreement_id: e for e in events if isinstance(e, AgreementReached)}
    assert agreements["turnberry-deal"].occurred_on == d(2025, 7, 27)  # block 18
    assert agreements["turnberry-deal"].parties == ("US", "EU")
    assert agreements["us-eu-joint-statement"].occurred_on == d(2025, 8, 21)  # block 23
    assert agreements["us-eu-joint-statement"].parties == ("US", "EU")
    assert {r.round_id: r.starts_on for r in events if isinstance(r, RoundHeld)} == {
        "turnberry-2025-07-27": d(2025, 7, 27),  # block 18
        "brussels-2025-11-24": d(2025, 11, 24),  # block 32
    }
    (surcharge,) = _changes(events, "us-122-surcharge")
    assert (surcharge.occurred_on, surcharge.imposed_by, surcharge.applies_to) == (d(2026, 2, 20), "US", "ALL")  # block 42
    assert (surcharge.rate_pct, surcharge.rate_kind, surcharge.coverage) == (10, "additional", "all")  # blocks 42, 43, 46: 10%, not 15%
    assert (surcharge.effective_from, surcharge.effective_until) == (d(2026, 2, 24), d(2026, 7, 23))  # blocks 42, 60: ends 12:01 a.m. 24 Jul


# --- the state the dataset folds to, date by date --------------------------------------------


def test_2025_03_11_metals_announced_not_in_force(state) -> None:
    us = _us(state, d(2025, 3, 11))
    assert _in_force(us) == {}
    assert _out(us) == {
        "us-232-steel-eu": ("announced", 25),  # block 1: effective 12 Mar
        "us-232-aluminium-eu": ("announced", 25),  # block 1
    }
    assert us.total_additional_pct == 0
    assert ("EU", "US") not in _directions(state, d(2025, 3, 11))  # block 2: the EU's response comes on 12 Mar


def test_2025_03_12_metals_25_partial_not_counted(state) -> None:
    us = _us(state, d(2025, 3, 12))
    assert _in_force(us) == {"us-232-steel-eu": 25, "us-232-aluminium-eu": 25}  # block 1 / block 2
    assert all(m.coverage == "partial" and not m.counted for m in us.measures)
    assert us.total_additional_pct == 0
    assert _out(_eu(state, d(2025, 3, 12))) == {"eu-countermeasures-first-list-us": ("announced", None)}  # block 2: €26bn announced


def test_2025_04_05_baseline_10(state) -> None:
    us = _us(state, d(2025, 4, 5))
    assert _in_force(us) == {
        "us-232-steel-eu": 25,  # block 1
        "us-232-aluminium-eu": 25,  # block 1
        "us-232-autos-eu": 25,  # block 3: cars from 3 Apr
        "us-ieepa-reciprocal-eu": 10,  # block 4: 10% baseline from 5 Apr
    }
    assert _out(us) == {"us-232-auto-parts-eu": ("announced", 25)}  # block 3: parts from 3 May
    assert us.total_additional_pct == 10  # block 4
    assert us.all_inclusive_pct is None


def test_2025_04_10_pause_keeps_10_and_would_bring_back_20(state) -> None:
    us = _us(state, d(2025, 4, 10))
    assert us.total_additional_pct == 10  # block 7: EO 14266, 10% instead of 20%
    line = _line(us, "us-ieepa-reciprocal-eu")
    assert (line.status, line.rate_pct, line.since) == ("suspended", 10, d(2025, 4, 10))  # block 7
    assert (line.lapse_rate_pct, line.suspended_points, line.until) == (20, 10, d(2025, 7, 8))  # block 7: to 12:01 a.m. 9 Jul
    assert _pending(us, "us-ieepa-reciprocal-eu") == [("in_force", 20, d(2025, 7, 9))]  # block 7: the Annex I rate on lapse
    pause = _deadline(state, d(2025, 4, 10), "reciprocal-pause")
    assert (pause.due_on, pause.ends, pause.lapses_on, pause.days_remaining) == (
        d(2025, 7, 9), "start_of_day", d(2025, 7, 9), 90  # block 7
    )
    assert truce(view(state, d(2025, 4, 10), NOW)).status == "none"  # the pauses were unilateral: no truce in the record
    eu = _eu(state, d(2025, 4, 10))
    assert _out(eu) == {"eu-countermeasures-first-list-us": ("suspended", None)}  # block 5: suspended to 14 Apr
    assert eu.total_additional_pct == 0


def test_2025_06_04_metals_50_and_the_50_threat(state) -> None:
    us = _us(state, d(2025, 6, 4))
    assert _in_force(us) == {
        "us-232-steel-eu": 50,  # block 12: Proclamation 10947 from 4 Jun
        "us-232-aluminium-eu": 50,  # block 12
        "us-232-autos-eu": 25,  # block 3
        "us-232-auto-parts-eu": 25,  # block 3: from 3 May
        "us-ieepa-reciprocal-eu": 10,  # block 7
    }
    assert _out(us) == {"us-threat-eu-all-goods": ("threatened", 50)}  # blocks 10, 11: 50%, moved to 9 Jul
    assert us.total_additional_pct == 10
    assert _deadline(state, d(2025, 6, 4), "us-threat-eu-date").due_on == d(2025, 7, 9)  # block 11
    assert _out(_eu(state, d(2025, 6, 4))) == {
        "eu-countermeasures-first-list-us": ("suspended", None),  # block 8: 15 Apr – 14 Jul
        "eu-countermeasures-second-list-us": ("announced", None),  # block 9: €95bn consultation
    }


def test_2025_07_20_30_threat_listed_not_counted(state) -> None:
    us = _us(state, d(2025, 7, 20))
    assert _out(us) == {"us-threat-eu-all-goods": ("threatened", 30)}  # block 14: letter of 11/12 Jul
    assert us.total_additional_pct == 10  # block 13: EU stays at 10% reciprocal
    assert _line(us, "us-ieepa-reciprocal-eu").until == d(2025, 7, 31)  # block 13: to 12:01 a.m. 1 Aug
    assert _pending(us, "us-ieepa-reciprocal-eu") == [("in_force", 20, d(2025, 8, 1))]  # block 13, as the record stood
    pause = _deadline(state, d(2025, 7, 20), "reciprocal-pause")
    assert (pause.due_on, pause.original_due_on, pause.days_remaining) == (d(2025, 8, 1), d(2025, 7, 9), 12)  # block 13
    letter = _deadline(state, d(2025, 7, 20), "us-letter-eu-date")
    assert (letter.due_on, letter.resolved_on) == (d(2025, 8, 1), None)  # block 14
    assert _deadline(state, d(2025, 7, 20), "us-threat-eu-date").resolved_on == d(2025, 7, 12)  # block 14 supersedes block 11
    assert _out(_eu(state, d(2025, 7, 20)))["eu-countermeasures-first-list-us"] == ("suspended", None)  # block 15: to 6 Aug


def test_2025_08_07_fifteen_all_inclusive(state) -> None:
    before = _us(state, d(2025, 8, 6))
    assert _line(before, "us-ieepa-reciprocal-eu").rate_pct == 10  # block 20: suspension runs until the new rates start
    us = _us(state, d(2025, 8, 7))
    line = _line(us, "us-ieepa-reciprocal-eu")
    assert (line.rate_pct, line.rate_kind, line.coverage, line.counted) == (15, "all_inclusive", "all", False)  # block 20
    assert us.all_inclusive_pct == 15  # block 20: EO 14326, MFN + reciprocal = 15%
    assert us.total_additional_pct == 0  # block 20: nothing on top of MFN on every good
    assert _line(us, "us-232-autos-eu").rate_pct == 25  # block 20 (trap): cars stay at 27.5% until the notice
    assert _out(us) == {"us-threat-eu-all-goods": ("threatened", 30)}  # block 14: never imposed
    assert _deadline(state, d(2025, 8, 7), "reciprocal-pause") in deadlines(view(state, d(2025, 8, 7), NOW)).passed
    eu = _eu(state, d(2025, 8, 7))
    assert _out(eu) == {
        "eu-countermeasures-first-list-us": ("suspended", None),  # block 21: six months from 7 Aug
        "eu-countermeasures-second-list-us": ("suspended", None),  # block 21
    }
    assert {m.since for m in eu.not_in_force} == {d(2025, 8, 7)}  # block 21


def test_cars_as_of_2025_09_01_and_2025_10_01(state) -> None:
    september = _us(state, d(2025, 9, 1))
    cars = _line(september, "us-232-autos-eu")
    assert (cars.rate_pct, cars.rate_kind, cars.since) == (25, "additional", d(2025, 4, 3))  # block 3: 25% + MFN = 27.5%
    assert september.all_inclusive_pct == 15  # block 20
    assert _in_force(september)["us-232-steel-aluminium-derivatives-eu"] == 50  # block 22: from 18 Aug
    october = _us(state, d(2025, 10, 1))
    for measure_id in ("us-232-autos-eu", "us-232-auto-parts-eu"):
        line = _line(october, measure_id)
        assert (line.rate_pct, line.rate_kind, line.since, line.coverage) == (15, "all_inclusive", d(2025, 8, 1), "partial")  # block 29
    # as the record stood before the notice of 25 Sep, 1 Oct still showed 25% (recorded late, effective early)
    earlier = _us(state, d(2025, 10, 1), known_at=dt.datetime(2025, 9, 20, tzinfo=dt.UTC))
    assert _line(earlier, "us-232-autos-eu").rate_pct == 25  # block 3
    # the 1 Sep carve-out (aircraft, generics, natural resources) leaves the 15% line partial
    reciprocal = _line(october, "us-ieepa-reciprocal-eu")
    assert [(e.exemption_id, e.since) for e in reciprocal.exemptions] == [
        ("eu-aircraft-generics-natural-resources", d(2025, 9, 1))  # blocks 26, 29
    ]
    assert (reciprocal.rate_pct, reciprocal.coverage) == (15, "partial")  # block 20
    assert october.all_inclusive_pct == 15  # block 20: the rule still covers every good but the exempted ones
    assert october.total_additional_pct == 0


def test_2026_02_23_last_day_of_ieepa(state) -> None:
    us = _us(state, d(2026, 2, 23))
    assert _line(us, "us-ieepa-reciprocal-eu").rate_pct == 15  # block 46: collection stops only on 24 Feb
    assert _out(us)["us-122-surcharge"] == ("announced", 10)  # block 42: from 24 Feb
    assert _pending(us, "us-ieepa-reciprocal-eu") == [("invalidated", None, d(2026, 2, 24))]  # blocks 41, 46
    assert _pending(us, "us-122-surcharge") == [("in_force", 10, d(2026, 2, 24))]  # block 42
    assert _out(us)["us-threat-122-15"] == ("threatened", 15)  # block 43
    assert _out(us)["us-threat-greenland"] == ("removed", None)  # block 36: withdrawn 21 Jan
    assert us.total_additional_pct == 0
    assert _issue(state, d(2026, 2, 23), "eu-implementing-regulations").status == "stalled"  # block 45: second suspension
    assert _issue(state, d(2026, 2, 23), "ieepa-tariffs-legality").status == "resolved"  # block 41


def test_2026_03_01_ieepa_invalidated_section_122_counted(state) -> None:
    us = _us(state, d(2026, 3, 1))
    out = _out(us)
    assert out["us-ieepa-reciprocal-eu"] == ("invalidated", None)  # block 41: Learning Resources v. Trump
    assert next(m.since for m in us.not_in_force if m.measure_id == "us-ieepa-reciprocal-eu") == d(2026, 2, 24)  # block 46
    surcharge = _line(us, "us-122-surcharge")
    assert (surcharge.rate_pct, surcharge.counted, surcharge.all_destinations) == (10, True, True)  # blocks 42, 46
    assert (surcharge.since, surcharge.until) == (d(2026, 2, 24), d(2026, 7, 23))  # blocks 42, 60
    assert us.total_additional_pct == 10  # block 46: MFN + 10%, not 15% (block 43)
    assert us.all_inclusive_pct is None  # block 46: the 15% ceiling lapses
    assert _in_force(us) == {
        "us-122-surcharge": 10,  # block 42
        "us-232-steel-eu": 50,  # block 46: steel and aluminium stay at 50%
        "us-232-aluminium-eu": 50,  # block 46
        "us-232-steel-aluminium-derivatives-eu": 50,  # block 22
        "us-232-autos-eu": 15,  # block 41: the Section 232 car rate survives
        "us-232-auto-parts-eu": 15,  # block 29
        "us-232-timber-lumber-eu": 10,  # block 31
        "us-232-wood-furniture-cabinets-eu": 15,  # block 31: EU cap 15% incl. MFN
        "us-232-semiconductors": 25,  # block 33
    }
    assert "ieepa-duty-refunds" not in {i.issue_id for i in issues(view(state, d(2026, 3, 1), NOW)).issues}  # block 47: 4 Mar
    assert _issue(state, d(2026, 3, 4), "ieepa-duty-refunds").status == "open"  # block 47


def test_2026_07_01_eu_zero_duties(state) -> None:
    eu = _eu(state, d(2026, 7, 1))
    assert _in_force(eu) == {
        "eu-zero-duties-us-industrial": 0,  # blocks 58, 59: 0% from 1 Jul 2026
        "eu-zero-duty-us-lobster": 0,  # blocks 55, 58: retroactive to 1 Aug 2025
    }
    industrial = _line(eu, "eu-zero-duties-us-industrial")
    assert (industrial.rate_kind, industrial.coverage, industrial.since, industrial.until) == (
        "all_inclusive", "partial", d(2026, 7, 1), d(2029, 12, 31)  # block 58: sunset 31 Dec 2029
    )
    assert _line(eu, "eu-zero-duty-us-lobster").since == d(2025, 8, 1)  # block 55
    assert _out(eu) == {
        "eu-countermeasures-first-list-us": ("suspended", None),  # block 39: to 6 Aug 2026
        "eu-countermeasures-second-list-us": ("suspended", None),  # block 39
    }
    assert eu.total_additional_pct == 0
    day_before = _eu(state, d(2026, 6, 30))
    assert _out(day_before)["eu-zero-duties-us-industrial"] == ("announced", 0)  # block 59: applies from 1 Jul
    us = _us(state, d(2026, 7, 1))
    assert us.total_additional_pct == 10  # block 60: Section 122 until 23 Jul
    assert _out(us)["us-threat-autos-25-eu"] == ("threatened", 25)  # block 52: no instrument found
    assert _line(us, "us-232-autos-eu").rate_pct == 15  # block 52: Brussels Times still gives 15%
    expiry = _deadline(state, d(2026, 7, 1), "section-122-expiry")
    assert (expiry.due_on, expiry.ends, expiry.lapses_on, expiry.days_remaining) == (
        d(2026, 7, 24), "start_of_day", d(2026, 7, 24), 23  # block 60: 12:01 a.m. EDT 24 Jul
    )
    july_4 = _deadline(state, d(2026, 7, 1), "eu-july-4-deadline")
    assert (july_4.due_on, july_4.resolved_on) == (d(2026, 7, 4), d(2026, 6, 30))  # blocks 54, 59
    regulations = _issue(state, d(2026, 7, 1), "eu-implementing-regulations")
    assert regulations.status == "resolved"  # block 58
    assert [h.status for h in regulations.history] == [
        "awaiting_approval",  # block 24: proposals need Parliament and Council
        "stalled",  # block 35: first suspension (Greenland)
        "awaiting_approval",  # block 38: work resumes
        "stalled",  # block 45: second suspension
        "in_negotiation",  # block 50: plenary position, trilogues
        "awaiting_approval",  # block 55: provisional agreement
        "resolved",  # block 58: Council adopts
    ]
    assert not coverage(view(state, d(2026, 7, 1), NOW)).beyond_record  # block 59


def test_2026_07_24_section_122_expired_beyond_the_record(state) -> None:
    us = _us(state, d(2026, 7, 24))
    assert _out(us)["us-122-surcharge"] == ("expired", None)  # block 60: ends 12:01 a.m. EDT 24 Jul
    assert next(m.since for m in us.not_in_force if m.measure_id == "us-122-surcharge") == d(2026, 7, 24)
    assert us.total_additional_pct == 0  # block 60: what replaced it could not be sourced
    assert _line(_us(state, d(2026, 7, 23)), "us-122-surcharge").rate_pct == 10  # block 60: last day 23 Jul
    answer = coverage(view(state, d(2026, 7, 24), NOW))
    assert (answer.record_through, answer.declared, answer.beyond_record) == (d(2026, 7, 1), True, True)


def test_a_date_past_the_record(state) -> None:
    answer = coverage(view(state, d(2026, 12, 1), NOW))
    assert answer.beyond_record and answer.declared  # "Could not source": nothing after early July 2026


def test_no_threat_and_no_countermeasure_is_ever_in_force(state) -> None:
    never = {
        "us-threat-eu-all-goods",
        "us-threat-pharma-100",
        "us-threat-greenland",
        "us-threat-122-15",
        "us-threat-autos-25-eu",
        "eu-countermeasures-first-list-us",
        "eu-countermeasures-second-list-us",
    }
    day = d(2025, 2, 10)
    while day <= d(2026, 8, 6):
        for direction in _directions(state, day).values():
            assert not never & set(_in_force(direction)), day
        day += dt.timedelta(days=7)


def test_every_figure_traces_back_to_a_sourced_event(state, recorded: list[Recorded]) -> None:
    by_id = {r.event_id: r.event for r in recorded}
    for on in (d(2025, 8, 7), d(2026, 3, 1), d(2026, 7, 1)):
        for direction in _directions(state, on).values():
            for line in (*direction.measures, *direction.not_in_force):
                assert line.because and all(by_id[i].source and by_id[i].source.name for i in line.because)
