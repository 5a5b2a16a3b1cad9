"""The model's finer rules through HTTP on both stores: lapse rates, how deadlines end, every measure's lifecycle,
scope on every destination, exemptions, approval pending, named organisations, and where the record ends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import deadline, measure
from tests.api.test_state_api import BASE, append, open_talks, seed_through_geneva, us_on_cn


def state(api: Any, as_of: str, part: str | None = None, **params: str) -> dict[str, Any]:
    path = f"{BASE}/state" + (f"/{part}" if part else "")
    response = api.get(path, params={"as_of": as_of, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def direction(answer: dict[str, Any], imposed_by: str, applies_to: str) -> dict[str, Any]:
    (found,) = [d for d in answer["tariffs"]["directions"] if (d["imposed_by"], d["applies_to"]) == (imposed_by, applies_to)]
    return found


# --- lapse rates -------------------------------------------------------------------------------------


def test_geneva_keeps_10_and_lapses_to_34_not_to_125_with_no_invented_line(api: Any) -> None:
    ids = seed_through_geneva(api)

    on_28_july = us_on_cn(api, "2025-07-28")

    assert {m["measure_id"]: m["rate_pct"] for m in on_28_july["measures"]} == {"us-ieepa-fentanyl-cn": 20, "us-ieepa-reciprocal-cn": 10}
    lapse = on_28_july["on_truce_lapse"]
    assert {m["measure_id"]: m["rate_pct"] for m in lapse["measures"]} == {"us-ieepa-fentanyl-cn": 20, "us-ieepa-reciprocal-cn": 34}
    assert lapse["total_additional_pct"] == 54
    # the 34 comes from the Geneva suspension itself, not from an older in-force line
    (returning,) = [m for m in lapse["measures"] if m["measure_id"] == "us-ieepa-reciprocal-cn"]
    assert ids["geneva_10"] in returning["because"] and ids["reciprocal_34"] not in returning["because"]


def test_a_truce_can_name_the_rate_on_lapse_of_each_measure_it_suspends(api: Any) -> None:
    open_talks(api)
    append(
        api,
        deadline("pause-ends", "2025-09-01", ends="start_of_day"),
        measure("cn-counter", 125, imposed_by="CN", applies_to="US", occurred_on="2025-04-11", effective_from="2025-04-12"),
        measure("cn-counter", 10, imposed_by="CN", applies_to="US", status="suspended", occurred_on="2025-05-12",
                effective_from="2025-05-14", until_deadline="pause-ends"),
        {"type": "truce_agreed", "occurred_on": "2025-05-12", "truce_id": "pause", "effective_from": "2025-05-14",
         "deadline_id": "pause-ends", "suspends": [{"measure_id": "cn-counter", "lapse_rate_pct": 34, "suspended_points": 24}]},
    )

    before, after = state(api, "2025-08-31"), state(api, "2025-09-01")

    assert direction(before, "CN", "US")["measures"][0]["lapse_rate_pct"] == 34
    assert before["truce"]["suspensions"] == [{"measure_id": "cn-counter", "lapse_rate_pct": 34, "suspended_points": 24}]
    assert before["truce"]["suspends"] == ["cn-counter"]
    assert direction(after, "CN", "US")["total_additional_pct"] == 34
    assert after["truce"]["status"] == "lapsed"


def test_a_suspension_that_names_no_lapse_rate_brings_back_the_rate_before_it(api: Any) -> None:
    open_talks(api)
    append(
        api,
        deadline("pause-ends", "2025-09-01"),
        measure("duty", 25, occurred_on="2025-01-01", effective_from="2025-01-02"),
        measure("duty", 10, status="suspended", occurred_on="2025-05-12", effective_from="2025-05-14", until_deadline="pause-ends"),
    )

    assert direction(state(api, "2025-09-01"), "US", "CN")["total_additional_pct"] == 10  # end of day: still suspended
    assert direction(state(api, "2025-09-02"), "US", "CN")["total_additional_pct"] == 25


def test_a_lapse_rate_needs_a_suspension_with_an_end(api: Any) -> None:
    open_talks(api)

    response = api.post(f"{BASE}/events", measure("duty", 10, status="in_force", lapse_rate_pct=34))
    open_ended = api.post(f"{BASE}/events", measure("duty", 10, status="suspended", lapse_rate_pct=34))

    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "lapse_rate_pct"
    assert open_ended.status_code == 422 and "until_deadline" in open_ended.json()["errors"][0]["message"]


# --- how a deadline ends -----------------------------------------------------------------------------


@pytest.mark.parametrize(("ends", "last_day_left", "first_day_after"), [("start_of_day", 1, "2025-08-12"), ("end_of_day", 0, "2025-08-13")])
def test_a_deadline_ends_at_the_start_or_at_the_end_of_its_day(api: Any, ends: str, last_day_left: int, first_day_after: str) -> None:
    open_talks(api)
    append(api, deadline(ends=ends), {"type": "truce_agreed", "occurred_on": "2025-05-12", "truce_id": "t",
                                      "effective_from": "2025-05-14", "deadline_id": "truce-expiry"})
    last_day = "2025-08-11" if ends == "start_of_day" else "2025-08-12"

    on_last_day, after = state(api, last_day), state(api, first_day_after)

    assert (on_last_day["truce"]["status"], on_last_day["truce"]["days_remaining"]) == ("active", last_day_left)
    assert on_last_day["deadlines"]["upcoming"][0]["lapses_on"] == first_day_after
    assert (after["truce"]["status"], after["truce"]["lapses_on"]) == ("lapsed", first_day_after)
    assert [d["deadline_id"] for d in after["deadlines"]["passed"]] == ["truce-expiry"]


def test_an_extension_can_change_the_consequence_and_keeps_how_the_date_ends(api: Any) -> None:
    open_talks(api)
    append(
        api,
        deadline(ends="start_of_day", consequence="34% returns"),
        {"type": "deadline_extended", "occurred_on": "2025-08-11", "deadline_id": "truce-expiry", "due_on": "2025-11-10",
         "consequence": "34% returns; port fees resume"},
    )

    (upcoming,) = state(api, "2025-09-01", "deadlines")["deadlines"]["upcoming"]

    assert (upcoming["due_on"], upcoming["ends"], upcoming["lapses_on"]) == ("2025-11-10", "start_of_day", "2025-11-10")
    assert upcoming["consequence"] == "34% returns; port fees resume"


# --- lifecycle ---------------------------------------------------------------------------------------


def test_a_threat_is_listed_as_threatened_and_never_counted(api: Any) -> None:
    open_talks(api)
    append(
        api,
        measure("us-ieepa-fentanyl-cn", 20),
        measure("us-threat-100-cn", 100, status="threatened", occurred_on="2025-10-10", effective_from="2025-11-01"),
    )

    us_cn = direction(state(api, "2025-11-05"), "US", "CN")

    assert us_cn["total_additional_pct"] == 20
    assert [m["measure_id"] for m in us_cn["measures"]] == ["us-ieepa-fentanyl-cn"]
    assert [(m["measure_id"], m["status"], m["since"], m["rate_pct"]) for m in us_cn["not_in_force"]] == [
        ("us-threat-100-cn", "threatened", "2025-10-10", 100)]


def test_a_court_invalidation_ends_a_measure_from_its_date_with_the_ruling_as_the_reason(api: Any) -> None:
    open_talks(api)
    (_, ruling) = append(
        api,
        measure("us-ieepa-fentanyl-cn", 10),
        measure("us-ieepa-fentanyl-cn", None, status="invalidated", occurred_on="2026-02-20", effective_from="2026-02-24",
                source={"name": "Supreme Court of the United States", "kind": "official"}),
    )

    before, after = direction(state(api, "2026-02-23"), "US", "CN"), direction(state(api, "2026-03-01"), "US", "CN")

    assert before["total_additional_pct"] == 10
    assert after["total_additional_pct"] == 0 and after["measures"] == []
    (line,) = after["not_in_force"]
    assert (line["status"], line["since"]) == ("invalidated", "2026-02-24")
    assert ruling["event_id"] in line["because"]


def test_announced_removed_and_expired_measures_stay_listed_with_since_when(api: Any) -> None:
    open_talks(api)
    append(
        api,
        measure("scheduled", 15, occurred_on="2025-03-01", effective_from="2025-07-01"),
        measure("temporary", 5, occurred_on="2025-01-01", effective_from="2025-01-02", effective_until="2025-03-31"),
        measure("lifted", 10, occurred_on="2025-01-01", effective_from="2025-01-02"),
        measure("lifted", None, status="removed", occurred_on="2025-04-01", effective_from="2025-04-02"),
        measure("entity-list", None, kind="entity_listing", occurred_on="2025-01-01", effective_from="2025-01-02",
                effective_until="2025-02-28", legal_basis=None),
    )

    answer = state(api, "2025-05-01")
    lines = {m["measure_id"]: (m["status"], m["since"]) for m in direction(answer, "US", "CN")["not_in_force"]}
    (listing,) = answer["measures"]["measures"]

    assert lines == {"scheduled": ("announced", "2025-03-01"), "temporary": ("expired", "2025-04-01"),
                     "lifted": ("removed", "2025-04-02")}
    assert (listing["status"], listing["since"], listing["in_force"]) == ("expired", "2025-03-01", False)


# --- scope: every destination, exemptions ----------------------------------------------------------


def test_a_measure_on_every_destination_appears_in_each_direction_it_hits(api: Any) -> None:
    open_talks(api)
    append(
        api,
        measure("us-section-122", 10, applies_to="ALL", legal_basis="Section 122", occurred_on="2026-02-20", effective_from="2026-02-24"),
        measure("cn-rare-earths", None, kind="export_control", imposed_by="CN", applies_to="ALL", legal_basis="MOFCOM"),
    )

    answer = state(api, "2026-03-01")

    us_cn = direction(answer, "US", "CN")
    assert (us_cn["total_additional_pct"], us_cn["measures"][0]["all_destinations"]) == (10, True)
    (controls,) = answer["measures"]["measures"]
    assert (controls["applies_to"], controls["all_destinations"], controls["in_force"]) == ("ALL", True, True)


def test_an_exemption_takes_products_out_of_a_line_from_its_date(api: Any) -> None:
    open_talks(api)
    (_, exemption) = append(
        api,
        measure("us-ieepa-reciprocal-cn", 125, occurred_on="2025-04-09", effective_from="2025-04-10"),
        {"type": "exemption_granted", "occurred_on": "2025-04-11", "measure_id": "us-ieepa-reciprocal-cn",
         "exemption_id": "electronics", "description": "Smartphones, computers, chips", "effective_from": "2025-04-05"},
    )

    (line,) = direction(state(api, "2025-04-12"), "US", "CN")["measures"]

    assert (line["coverage"], line["counted"], line["rate_pct"]) == ("partial", True, 125)
    assert [(e["exemption_id"], e["since"]) for e in line["exemptions"]] == [("electronics", "2025-04-05")]
    assert exemption["event_id"] in line["because"]
    assert direction(state(api, "2025-04-12"), "US", "CN")["total_additional_pct"] == 125
    # before the exemption was granted, the same line covered every good
    assert direction(state(api, "2025-04-10"), "US", "CN")["measures"][0]["coverage"] == "all"


# --- issues and agreements --------------------------------------------------------------------------


def test_an_issue_goes_open_then_awaiting_approval_then_resolved(api: Any) -> None:
    open_talks(api)
    append(
        api,
        {"type": "issue_raised", "occurred_on": "2025-01-19", "issue_id": "tiktok", "title": "TikTok's US spin-off"},
        {"type": "issue_updated", "occurred_on": "2025-09-15", "issue_id": "tiktok", "status": "awaiting_approval",
         "text": "Framework agreed; Beijing must approve"},
        {"type": "issue_updated", "occurred_on": "2026-01-22", "issue_id": "tiktok", "status": "resolved"},
    )

    (issue,) = state(api, "2026-02-01", "issues")["issues"]["issues"]

    assert [(h["status"], h["occurred_on"]) for h in issue["history"]] == [
        ("open", "2025-01-19"), ("awaiting_approval", "2025-09-15"), ("resolved", "2026-01-22")]
    assert state(api, "2025-10-01", "issues")["issues"]["issues"][0]["status"] == "awaiting_approval"


def test_an_agreement_names_companies_beside_party_codes(api: Any) -> None:
    open_talks(api)
    (stored,) = append(
        api,
        {"type": "agreement_reached", "occurred_on": "2025-12-18", "agreement_id": "tiktok-jv", "title": "TikTok USDS Joint Venture",
         "parties": ["US", {"name": "Oracle", "kind": "investor", "party": "US", "role": "15% investor"}, {"name": "ByteDance", "kind": "company"}]},
    )
    bad = api.post(f"{BASE}/events", {"type": "agreement_reached", "occurred_on": "2025-12-18", "agreement_id": "x", "title": "X",
                                       "parties": ["Oracle"]})

    assert stored["parties"][1] == {"name": "Oracle", "kind": "investor", "party": "US", "role": "15% investor"}
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].startswith("parties")


# --- coverage ----------------------------------------------------------------------------------------


def test_answers_past_the_last_recorded_date_say_so(api: Any) -> None:
    open_talks(api)
    append(api, measure("us-ieepa-fentanyl-cn", 20, occurred_on="2025-03-03", effective_from="2025-03-04"))

    within, beyond = state(api, "2025-03-03"), state(api, "2025-06-01")

    assert within["coverage"] == {"record_through": "2025-03-03", "declared": False, "beyond_record": False,
                                  "because": within["coverage"]["because"]}
    assert beyond["coverage"]["beyond_record"] is True
    for part in ("truce", "tariffs", "deadlines"):
        assert state(api, "2025-06-01", part)["coverage"]["beyond_record"] is True
    diff = api.get(f"{BASE}/diff", params={"from": "2025-03-01", "to": "2025-06-01"}).json()
    assert diff["coverage"]["beyond_record"] is True
    timeline = api.get(f"{BASE}/timeline", params={"to": "2025-06-01"}).json()
    assert timeline["coverage"]["beyond_record"] is True
    assert api.get(f"{BASE}/timeline").json()["coverage"]["beyond_record"] is False


def test_a_curator_declares_how_far_the_record_is_complete_and_earlier_knowledge_keeps_its_answer(api: Any, clock: Any) -> None:
    open_talks(api)
    append(api, measure("us-ieepa-fentanyl-cn", 20, occurred_on="2025-03-03", effective_from="2025-03-04"))
    before = clock.now
    clock.advance(days=1)
    (declared,) = append(api, {"type": "coverage_declared", "occurred_on": "2025-07-01", "record_through": "2025-06-30",
                               "note": "Checked against the Federal Register through June"})

    now, then = state(api, "2025-06-01"), state(api, "2025-06-01", known_at=before.isoformat().replace("+00:00", "Z"))

    assert now["coverage"] == {"record_through": "2025-06-30", "declared": True, "beyond_record": False,
                               "because": [declared["event_id"]]}
    assert (then["coverage"]["record_through"], then["coverage"]["beyond_record"]) == ("2025-03-03", True)


def test_an_all_inclusive_rate_is_a_rule_with_its_number_not_an_added_rate(api: Any) -> None:
    open_talks(api)
    append(
        api,
        measure("us-reciprocal-eu", 15, applies_to="CN", rate_kind="all_inclusive", occurred_on="2025-07-31",
                effective_from="2025-08-07"),
        measure("us-232-steel", 50, applies_to="CN", coverage="partial", legal_basis="Section 232",
                occurred_on="2025-06-03", effective_from="2025-06-04"),
    )

    us = direction(state(api, "2025-08-07"), "US", "CN")

    assert (us["total_additional_pct"], us["all_inclusive_pct"]) == (0, 15)
    line = next(m for m in us["measures"] if m["measure_id"] == "us-reciprocal-eu")
    assert (line["rate_kind"], line["rate_pct"], line["counted"]) == ("all_inclusive", 15, False)
