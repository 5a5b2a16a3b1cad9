"""The shipped `us-china-trade-2025` record, folded, answers what the public record says at dates across 2025–2026.

Each expected value names the row it comes from: `seed N` is a row of docs/record/seed-public-record-2025.md or
-2025-2026.md (rows 1–78), checked again against the official text the dataset cites; `after May` is a fact
sourced after 20 May 2026 (medium confidence). The events are recorded as if each was recorded at the end of
the day it occurred, so `known_at` can ask what the record said before a later event.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from events import datasets
from events.records import Recorded
from projections import State, deadlines, fold, issues, measures, rounds, tariff_schedule, truce, view
from projections.coverage import coverage

NEGOTIATION = "us-china-trade-2025"
LATER = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
D = dt.date.fromisoformat
FENTANYL, RECIPROCAL, COUNTER = "us-ieepa-fentanyl-cn", "us-ieepa-reciprocal-cn", "cn-tariff-commission-counter-us"


@pytest.fixture(scope="module")
def state() -> State:
    stream = uuid.uuid4()
    return fold(
        Recorded(
            originator_id=stream, originator_version=n, event_id=str(uuid.UUID(int=n)), negotiation_id=NEGOTIATION,
            recorded_at=dt.datetime.combine(e.occurred_on, dt.time(23, 0), dt.UTC) + dt.timedelta(microseconds=n),
            recorded_by="dataset", request_id="test", event=e,
        )
        for n, e in enumerate(datasets.load(NEGOTIATION), start=1)
    )


def direction(state: State, on: str, imposed_by: str = "US", legal_basis: str | None = None, known_at: dt.datetime = LATER):  # type: ignore[no-untyped-def]
    schedule = tariff_schedule(view(state, D(on), known_at), legal_basis=legal_basis)
    return next(d for d in schedule.directions if d.imposed_by == imposed_by)


def in_force(state: State, on: str, imposed_by: str = "US") -> dict[str, float | None]:
    return {m.measure_id: m.rate_pct for m in direction(state, on, imposed_by).measures}


def not_in_force(state: State, on: str, imposed_by: str = "US") -> dict[str, tuple[str | None, dt.date | None]]:
    return {m.measure_id: (m.status, m.since) for m in direction(state, on, imposed_by).not_in_force}


@pytest.mark.parametrize(
    ("on", "ieepa_total"),
    [
        ("2025-02-03", 0),  # seed 4: EO 14195 applies from 12:01 a.m. ET 4 Feb
        ("2025-02-04", 10),  # seed 4
        ("2025-03-04", 20),  # seed 8: EO 14228, 20% from 4 Mar
        ("2025-04-09", 104),  # seed 14: EO 14259, 84% + 20%
        ("2025-04-10", 145),  # seed 16: EO 14266, 125% + 20% (the White House's own 145%)
        ("2025-05-13", 145),  # seed 22: the Geneva cut applies from 14 May
        ("2025-05-14", 30),  # seed 22: EO 14298, 10% + 20%
        ("2025-11-09", 30),  # seed 58: the fentanyl cut applies from 12:01 a.m. EST 10 Nov, not 30 Oct
        ("2025-11-10", 20),  # seed 58 + 59: fentanyl 10% + reciprocal 10%
        ("2026-02-23", 20),  # seed 71: collection stops from 24 Feb
        ("2026-02-24", 0),  # seed 71: both IEEPA lines invalidated
    ],
)
def test_the_ieepa_total_on_chinese_goods(state: State, on: str, ieepa_total: float) -> None:
    assert direction(state, on, legal_basis="IEEPA").total_additional_pct == ieepa_total


def test_april_2025_the_34_never_applied_and_electronics_lost_the_reciprocal_tariff(state: State) -> None:
    # seed 11 + 14: the 34% scheduled for 9 Apr was replaced by 84% from the same moment
    assert in_force(state, "2025-04-09")[RECIPROCAL] == 84
    # Part B2: the 11 Apr memorandum exempts electronics retroactively from 5 Apr; the line still counts
    (reciprocal,) = [m for m in direction(state, "2025-04-12").measures if m.measure_id == RECIPROCAL]
    assert (reciprocal.coverage, reciprocal.counted) == ("partial", True)
    assert [(e.exemption_id, e.since) for e in reciprocal.exemptions] == [("electronics-2025-04", D("2025-04-05"))]
    # seed 15 + 17: China 84% from 10 Apr, 125% from 12 Apr
    assert in_force(state, "2025-04-10", "CN")[COUNTER] == 84
    assert in_force(state, "2025-04-12", "CN")[COUNTER] == 125


def test_the_section_301_layers_are_listed_but_not_in_the_total(state: State) -> None:
    # Part B1: Lists 1-3 at 25%, List 4A at 7.5%; seed 1-2: semiconductors and wafers 50%, tungsten 25%
    rates = in_force(state, "2025-07-28")
    assert {k: rates[k] for k in ("us-301-list1-cn", "us-301-list2-cn", "us-301-list3-cn", "us-301-list4a-cn")} == {
        "us-301-list1-cn": 25, "us-301-list2-cn": 25, "us-301-list3-cn": 25, "us-301-list4a-cn": 7.5}
    assert rates["us-301-semiconductors-cn"] == 50
    assert direction(state, "2025-07-28").total_additional_pct == 30  # seed 22: only the IEEPA lines are on all goods


def test_geneva_keeps_10_and_a_lapse_brings_back_34(state: State) -> None:
    # seed 21-23: 24 of 34 points suspended, 10% kept, each way
    us, cn = direction(state, "2025-07-28"), direction(state, "2025-07-28", "CN")
    line = next(m for m in us.measures if m.measure_id == RECIPROCAL)
    assert (line.status, line.rate_pct, line.lapse_rate_pct, line.suspended_points) == ("suspended", 10, 34, 24)
    # seed 22, 39: "until 12:01 a.m. EDT on August 12": 12 August is the first day at the lapse rate
    assert (us.on_truce_lapse.applies_from, us.on_truce_lapse.total_additional_pct) == (D("2025-08-12"), 54)
    assert cn.on_truce_lapse.total_additional_pct == 34


def test_before_the_august_extension_was_known_the_truce_lapsed_on_12_august(state: State) -> None:
    before = dt.datetime(2025, 8, 10, 23, 59, tzinfo=dt.UTC)  # seed 39: the extension of 11 Aug not yet recorded
    on_11 = truce(view(state, D("2025-08-11"), before))
    on_12 = truce(view(state, D("2025-08-12"), before))
    assert (on_11.status, on_11.days_remaining) == ("active", 1)
    assert on_12.status == "lapsed"
    then = {m.measure_id: m.rate_pct for m in direction(state, "2025-08-12", known_at=before).measures}
    assert then[RECIPROCAL] == 34
    assert in_force(state, "2025-08-12")[RECIPROCAL] == 10  # as known later: extended (seed 39)


def test_the_truce_runs_to_10_november_2026_after_busan(state: State) -> None:
    # seed 59: EO 14358, "until 12:01 a.m. eastern standard time on November 10, 2026"
    geneva = truce(view(state, D("2025-11-10"), LATER))
    assert (geneva.status, geneva.expires_on, geneva.ends) == ("active", D("2026-11-10"), "start_of_day")
    assert [e.due_on for e in geneva.extensions][:2] == [D("2025-11-10"), D("2026-11-10")]


def test_after_the_supreme_court_both_ieepa_lines_are_invalidated_and_section_122_applies(state: State) -> None:
    # seed 71: invalidated, not reduced, from 24 Feb 2026; seed 72: Section 122 10% on all countries
    assert not_in_force(state, "2026-03-01")[FENTANYL] == ("invalidated", D("2026-02-24"))
    assert not_in_force(state, "2026-03-01")[RECIPROCAL] == ("invalidated", D("2026-02-24"))
    surcharge = next(m for m in direction(state, "2026-03-01").measures if m.measure_id == "us-section-122-surcharge")
    assert (surcharge.rate_pct, surcharge.all_destinations, surcharge.counted) == (10, True, True)
    assert direction(state, "2026-03-01").total_additional_pct == 10
    # seed 72: the 15% was announced and never proclaimed
    assert not_in_force(state, "2026-03-01")["us-section-122-15pct"] == ("threatened", D("2026-02-21"))


def test_section_122_ends_after_150_days_and_the_forced_labour_duty_takes_over(state: State) -> None:
    # seed 72: last day 23 Jul 2026 (ends 12:01 a.m. EDT 24 Jul); after May: forced-labour 12.5% from 24 Jul
    assert in_force(state, "2026-07-23")["us-section-122-surcharge"] == 10
    assert not_in_force(state, "2026-07-24")["us-section-122-surcharge"] == ("expired", D("2026-07-24"))
    assert in_force(state, "2026-07-24")["us-301-forced-labour-cn"] == 12.5
    assert not_in_force(state, "2026-06-10")["us-301-forced-labour-cn"][0] == "announced"  # after May: a proposal


def test_the_threatened_100_percent_was_never_counted(state: State) -> None:
    # seed 53: threatened 10 Oct 2025, never imposed; seed 57: the plan halted on 1 Nov
    assert not_in_force(state, "2025-10-20")["us-threat-100-cn"] == ("threatened", D("2025-10-10"))
    assert direction(state, "2025-10-20").total_additional_pct == 30
    assert not_in_force(state, "2025-11-05")["us-threat-100-cn"] == ("removed", D("2025-11-01"))


def test_china_keeps_10_and_drops_its_farm_tariffs_from_10_november_2025(state: State) -> None:
    # seed 60: Announcement No. 10 keeps 10% with 24 points suspended; the No. 2 farm tariffs stop
    assert in_force(state, "2025-11-10", "CN")[COUNTER] == 10
    assert not_in_force(state, "2025-11-10", "CN")["cn-tariff-commission-us-agri-15"] == ("removed", D("2025-11-10"))
    # seed 60: the February 2025 energy and machinery duties were not lifted
    assert in_force(state, "2026-03-01", "CN")["cn-tariff-commission-us-coal-lng"] == 15


def test_export_controls_every_destination_and_their_one_year_suspensions(state: State) -> None:
    def status(on: str, measure_id: str) -> tuple[str | None, bool, bool]:
        found = next(m for m in measures(view(state, D(on), LATER)).measures if m.measure_id == measure_id)
        return found.status, found.in_force, found.all_destinations

    # seed 12: the April 2025 rare-earth licensing applies to every destination
    assert status("2025-06-01", "cn-mofcom-rare-earth-licensing") == ("in_force", True, True)
    # seed 52 + 61: the October 2025 controls in force from 9 Oct, suspended from 7 Nov to 10 Nov 2026
    assert status("2025-10-20", "cn-mofcom-rare-earth-controls-2025-10")[:2] == ("in_force", True)
    assert status("2025-11-08", "cn-mofcom-rare-earth-controls-2025-10")[:2] == ("suspended", False)
    # seed 51 + 64: the Affiliates Rule in force 29 Sep - 9 Nov 2025, then suspended through 9 Nov 2026
    assert status("2025-10-01", "us-bis-affiliates-rule")[:2] == ("in_force", True)
    assert status("2025-11-10", "us-bis-affiliates-rule")[:2] == ("suspended", False)


def test_tiktok_goes_open_awaiting_approval_resolved(state: State) -> None:
    # Part B3: the law in effect 19 Jan 2025; seed 45: framework, China must approve; seed 69: the JV closes
    (tiktok,) = [i for i in issues(view(state, D("2026-02-01"), LATER)).issues if i.issue_id == "tiktok-spinoff"]
    history = [(h.status, h.occurred_on) for h in tiktok.history]
    assert history[0] == ("open", D("2025-01-19"))
    assert ("awaiting_approval", D("2025-09-15")) in history
    assert history[-1] == ("resolved", D("2026-01-22"))


def test_every_round_from_geneva_to_beijing_is_held(state: State) -> None:
    held = {r.round_id: (r.starts_on, r.ends_on) for r in rounds(view(state, D("2026-06-01"), LATER)).rounds if r.status == "held"}
    assert held["stockholm-2025-07"] == (D("2025-07-28"), D("2025-07-29"))  # Part B4: held 28-29 July
    assert {"geneva-2025-05", "london-2025-06", "madrid-2025-09", "kuala-lumpur-2025-10", "busan-summit-2025-10",
            "paris-2026-03", "beijing-summit-2026-05"} <= held.keys()


def test_the_record_says_where_it_ends(state: State) -> None:
    # the coverage declaration: complete through 5 Jun 2026 (news and official pages); later facts are partial
    within, today = coverage(view(state, D("2026-06-05"), LATER)), coverage(view(state, D("2026-12-06"), LATER))
    assert (within.record_through, within.declared, within.beyond_record) == (D("2026-06-05"), True, False)
    assert today.beyond_record is True
    # after May (medium): the truce extended to 10 Jan 2027 by statements, with no instrument found
    assert truce(view(state, D("2026-12-06"), LATER)).expires_on == D("2027-01-10")
    upcoming = {d.deadline_id for d in deadlines(view(state, D("2026-06-05"), LATER)).upcoming}
    assert {"truce-expiry", "us-affiliates-rule-suspension-ends", "us-301-semiconductor-step-up"} <= upcoming
