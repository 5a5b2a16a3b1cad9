"""State at (as_of, known_at), statements, the timeline in world order and diffs, through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.api.conftest import deadline, measure

TALKS = "us-china-trade-2025"
BASE = f"/v1/negotiations/{TALKS}"
FENTANYL = "us-ieepa-fentanyl-cn"
RECIPROCAL = "us-ieepa-reciprocal-cn"
GENEVA = {"name": "The White House", "title": "Joint Statement on U.S.-China Economic and Trade Meeting in Geneva",
          "published_at": "2025-05-12", "reliability": "A", "credibility": 1}


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ieepa(measure_id: str, announced: str, effective: str, rate: float, **extra: Any) -> dict[str, Any]:
    return measure(measure_id, rate, occurred_on=announced, effective_from=effective, **extra)


def append(api: Any, *events: dict[str, Any], negotiation: str = TALKS) -> list[dict[str, Any]]:
    response = api.post(f"/v1/negotiations/{negotiation}/events", {"events": list(events)})
    assert response.status_code == 201, response.text
    return response.json()["events"]


def open_talks(api: Any, negotiation: str = TALKS) -> None:
    body = {"id": negotiation, "title": "US-China trade 2025", "parties": ["US", "CN"], "occurred_on": "2025-01-20"}
    assert api.post("/v1/negotiations", body).status_code == 201


def seed_through_geneva(api: Any) -> dict[str, str]:
    open_talks(api)
    names = ["section_301", "fentanyl_10", "fentanyl_20", "reciprocal_34", "reciprocal_84", "reciprocal_125",
             "deadline", "geneva_10", "truce"]
    stored = append(
        api,
        measure("us-301-semiconductors-cn", 50, occurred_on="2024-09-13", effective_from="2025-01-01",
                legal_basis="Section 301, Trade Act of 1974"),
        ieepa(FENTANYL, "2025-02-01", "2025-02-04", 10),
        ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20),
        ieepa(RECIPROCAL, "2025-04-02", "2025-04-09", 34),
        ieepa(RECIPROCAL, "2025-04-08", "2025-04-09", 84),
        ieepa(RECIPROCAL, "2025-04-09", "2025-04-10", 125),
        # until 12:01 a.m. on 12 August: the 12th is the first day after the suspension
        deadline(title="End of the 90-day suspension", ends="start_of_day"),
        # 10% kept, 24 of 34 points suspended: a lapse brings back 34% (no in-force 34% line is invented)
        ieepa(RECIPROCAL, "2025-05-12", "2025-05-14", 10, status="suspended", until_deadline="truce-expiry", source=GENEVA,
              lapse_rate_pct=34, suspended_points=24),
        {"type": "truce_agreed", "occurred_on": "2025-05-12", "source": GENEVA, "truce_id": "geneva-truce",
         "parties": ["US", "CN"], "effective_from": "2025-05-14", "deadline_id": "truce-expiry", "suspends": [RECIPROCAL]},
    )
    return {name: event["event_id"] for name, event in zip(names, stored, strict=True)}


def record_the_august_extension(api: Any) -> dict[str, str]:
    order = {"name": "The White House", "published_at": "2025-08-11",
             "title": "Further Modifying Reciprocal Tariff Rates to Reflect Ongoing Discussions with the PRC"}
    stored = append(
        api,
        {"type": "deadline_extended", "occurred_on": "2025-08-11", "source": order, "deadline_id": "truce-expiry",
         "due_on": "2025-11-10", "ends": "start_of_day"},
        {"type": "truce_extended", "occurred_on": "2025-08-11", "source": order, "truce_id": "geneva-truce",
         "deadline_id": "truce-expiry"},
    )
    return {"extension": stored[0]["event_id"], "truce_extended": stored[1]["event_id"]}


def us_on_cn(api: Any, as_of: str, **params: str) -> dict[str, Any]:
    response = api.get(f"{BASE}/state/tariffs", params={"as_of": as_of, "legal_basis": "IEEPA", **params})
    assert response.status_code == 200, response.text
    (direction,) = [d for d in response.json()["tariffs"]["directions"] if (d["imposed_by"], d["applies_to"]) == ("US", "CN")]
    return direction


def rates(direction: dict[str, Any]) -> dict[str, float]:
    return {m["measure_id"]: m["rate_pct"] for m in direction["measures"]}


def field_of(response: Any) -> set[str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return {e["field"] for e in response.json()["errors"]}


# --- the issue's acceptance check -----------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2025-03-03", {FENTANYL: 10}),
        ("2025-03-04", {FENTANYL: 20}),
        ("2025-04-10", {FENTANYL: 20, RECIPROCAL: 125}),
        ("2025-05-13", {FENTANYL: 20, RECIPROCAL: 125}),
        ("2025-05-14", {FENTANYL: 20, RECIPROCAL: 10}),
    ],
)
def test_ieepa_rates_on_china_as_of_each_day_of_the_escalation_and_geneva(api, as_of, expected):
    seed_through_geneva(api)

    direction = us_on_cn(api, as_of)

    assert rates(direction) == expected
    assert direction["total_additional_pct"] == sum(expected.values())


def test_the_day_before_geneva_applies_the_cut_to_10_is_pending(api):
    ids = seed_through_geneva(api)

    direction = us_on_cn(api, "2025-05-13")

    assert direction["total_additional_pct"] == 145
    assert [(p["measure_id"], p["rate_pct"], p["effective_from"]) for p in direction["pending"]] == [
        (RECIPROCAL, 10, "2025-05-14"), (RECIPROCAL, 34, "2025-08-12")
    ]
    assert ids["geneva_10"] in direction["pending"][0]["because"]


def test_truce_before_expiry_counts_15_days_and_the_lapse_brings_back_34(api):
    ids = seed_through_geneva(api)

    body = api.get(f"{BASE}/state", params={"as_of": "2025-07-28", "legal_basis": "IEEPA"}).json()

    geneva = body["truce"]
    assert (geneva["status"], geneva["expires_on"], geneva["days_remaining"]) == ("active", "2025-08-12", 15)
    assert {ids["truce"], ids["deadline"]} <= set(geneva["because"])
    (direction,) = body["tariffs"]["directions"]
    (reciprocal,) = [m for m in direction["measures"] if m["measure_id"] == RECIPROCAL]
    assert (reciprocal["rate_pct"], reciprocal["lapse_rate_pct"], reciprocal["suspended_points"]) == (10, 34, 24)
    lapse = direction["on_truce_lapse"]
    assert lapse["applies_from"] == "2025-08-12"
    assert rates(lapse)[RECIPROCAL] == 34
    assert lapse["total_additional_pct"] == 54


def test_the_august_extension_moves_the_expiry_and_earlier_knowledge_still_says_lapsed(api, clock):
    seed_through_geneva(api)
    before_extension = clock.now
    clock.advance(days=1)
    ids = record_the_august_extension(api)

    now = api.get(f"{BASE}/state", params={"as_of": "2025-08-20", "legal_basis": "IEEPA"}).json()
    then = api.get(
        f"{BASE}/state", params={"as_of": "2025-08-20", "legal_basis": "IEEPA", "known_at": stamp(before_extension)}
    ).json()

    assert (now["truce"]["status"], now["truce"]["expires_on"]) == ("active", "2025-11-10")
    assert [e["event_id"] for e in now["truce"]["extensions"]] == [ids["extension"]]
    assert now["tariffs"]["directions"][0]["total_additional_pct"] == 30
    assert (then["truce"]["status"], then["truce"]["expires_on"]) == ("lapsed", "2025-08-12")
    assert rates(then["tariffs"]["directions"][0]) == {FENTANYL: 20, RECIPROCAL: 34}
    assert then["known_at"] == stamp(before_extension)


def test_state_answers_every_read_model_with_the_position_known_at(api, clock):
    open_talks(api)
    first = append(api, deadline())[0]
    first_known = clock.now
    clock.advance(days=1)
    second = append(api, {"type": "issue_raised", "occurred_on": "2025-05-12", "issue_id": "tiktok-spinoff",
                          "title": "TikTok's US spin-off"})[0]

    body = api.get(f"{BASE}/state", params={"as_of": "2025-06-01"}).json()
    earlier = api.get(f"{BASE}/state", params={"as_of": "2025-06-01", "known_at": stamp(first_known)}).json()
    before_anything = api.get(f"{BASE}/state", params={"known_at": "2000-01-01T00:00:00+01:00"}).json()

    assert set(body) == {"as_of", "known_at", "position", "coverage", "truce", "tariffs", "measures", "deadlines", "issues",
                         "rounds", "agreements", "sources", "corroboration", "because_events"}
    assert body["as_of"] == "2025-06-01" and body["known_at"] == stamp(clock.now)
    assert body["position"] == second["position"]
    assert [i["issue_id"] for i in body["issues"]["issues"]] == ["tiktok-spinoff"]
    assert earlier["position"] == first["position"] and earlier["issues"]["issues"] == []
    assert before_anything["position"] == 0 and before_anything["truce"]["status"] == "none"
    assert before_anything["as_of"] == clock.now.date().isoformat()


def test_each_part_answers_alone_and_an_unknown_part_is_404_listing_the_parts(api):
    seed_through_geneva(api)

    for part in ("truce", "tariffs", "measures", "deadlines", "issues", "rounds"):
        response = api.get(f"{BASE}/state/{part}", params={"as_of": "2025-07-28"})
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"as_of", "known_at", "position", "coverage", part, "sources", "corroboration",
                                        "because_events"}
    assert api.get(f"{BASE}/state/deadlines", params={"as_of": "2025-07-28"}).json()["deadlines"]["upcoming"][0][
        "days_remaining"] == 15

    unknown = api.get(f"{BASE}/state/weather")
    assert unknown.status_code == 404
    assert field_of(unknown) == {"part"}
    assert "truce, tariffs, measures, deadlines, issues, rounds" in unknown.json()["detail"]


def test_a_correction_changes_state_from_when_it_was_recorded_and_not_before(api, clock):
    open_talks(api)
    wrong = append(api, ieepa(FENTANYL, "2025-03-03", "2025-03-04", 25))[0]
    before_correction = clock.now
    clock.advance(days=1)
    correction = append(api, {"type": "event_corrected", "occurred_on": "2025-03-05", "target": wrong["event_id"],
                              "reason": "the order says 20", "replacement": ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20)})[0]
    corrected_at = clock.now

    assert rates(us_on_cn(api, "2025-03-10", known_at=stamp(before_correction))) == {FENTANYL: 25}
    just_before = corrected_at - dt.timedelta(microseconds=1)
    assert rates(us_on_cn(api, "2025-03-10", known_at=stamp(just_before))) == {FENTANYL: 25}
    assert rates(us_on_cn(api, "2025-03-10", known_at=stamp(corrected_at))) == {FENTANYL: 20}
    fixed = us_on_cn(api, "2025-03-10")
    assert rates(fixed) == {FENTANYL: 20}
    assert fixed["measures"][0]["because"] == [wrong["event_id"], correction["event_id"]]


# --- diffs ----------------------------------------------------------------------------------


def changes_by_path(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["path"]: c for c in body["changes"]}


def test_diff_between_two_world_dates_shows_the_geneva_cut_and_why(api):
    ids = seed_through_geneva(api)

    response = api.get(f"{BASE}/diff", params={"from": "2025-05-13", "to": "2025-05-14", "legal_basis": "IEEPA"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["before"]["as_of"], body["after"]["as_of"]) == ("2025-05-13", "2025-05-14")
    changes = changes_by_path(body)
    total = changes["tariffs.US->CN.total_additional_pct"]
    assert (total["before"], total["after"]) == (145, 30)
    assert ids["geneva_10"] in total["because"]
    rate = changes[f"tariffs.US->CN.measures.{RECIPROCAL}.rate_pct"]
    assert (rate["before"], rate["after"]) == (125, 10)
    assert (changes["truce.status"]["before"], changes["truce.status"]["after"]) == ("pending", "active")
    gone = changes[f"tariffs.US->CN.pending.{RECIPROCAL}@2025-05-14"]
    assert gone["after"] is None and gone["before"]["rate_pct"] == 10
    assert not any(path.endswith("days_remaining") for path in changes)


def because_of_every_value(tree: Any) -> set[str]:
    if isinstance(tree, dict):
        return set(tree.get("because", ())).union(*(because_of_every_value(v) for k, v in tree.items() if k != "because_events"))
    if isinstance(tree, list):
        return set().union(*(because_of_every_value(v) for v in tree))
    return set()


def test_expand_because_answers_why_with_each_events_date_type_line_and_source_in_one_call(api):
    ids = seed_through_geneva(api)
    params = {"from": "2025-05-13", "to": "2025-05-14", "legal_basis": "IEEPA"}

    plain = api.get(f"{BASE}/diff", params=params).json()
    body = api.get(f"{BASE}/diff", params={**params, "expand": "because"}).json()

    assert plain["because_events"] is None
    assert body["changes"] == plain["changes"]
    why = body["because_events"]
    assert set(why) == because_of_every_value(body["changes"])
    total = changes_by_path(body)["tariffs.US->CN.total_additional_pct"]
    cut = why[ids["geneva_10"]]
    assert ids["geneva_10"] in total["because"]
    assert (cut["event_id"], cut["occurred_on"], cut["type"]) == (ids["geneva_10"], "2025-05-12", "measure_changed")
    assert cut["display"]["summary"].startswith("US → CN: us-ieepa-reciprocal-cn (tariff) suspended 10%")
    assert (cut["source"]["name"], cut["source"]["reliability"]) == ("The White House", "A")
    assert cut["recorded_by"] == "reporter-key"
    assert why[ids["fentanyl_20"]]["source"]["name"] == "The White House"


@pytest.mark.parametrize("route", ["state", "state/tariffs", "state/truce"])
def test_state_and_each_part_expand_every_because_they_carry(api, route):
    ids = seed_through_geneva(api)

    plain = api.get(f"{BASE}/{route}", params={"as_of": "2025-06-01"}).json()
    body = api.get(f"{BASE}/{route}", params={"as_of": "2025-06-01", "expand": "because"}).json()

    assert plain["because_events"] is None
    assert {k: v for k, v in body.items() if k != "because_events"} == {k: v for k, v in plain.items() if k != "because_events"}
    assert set(body["because_events"]) == because_of_every_value(body) == set(body["sources"])
    assert ids["truce"] in body["because_events"] or route == "state/tariffs"
    for event_id, event in body["because_events"].items():
        assert event["event_id"] == event_id and event["display"]["summary"] and event["type"]


@pytest.mark.parametrize("route", ["state", "state/truce", "diff?from=2025-05-01&to=2025-06-01", "claims"])
@pytest.mark.parametrize("expand", ["reasons", "because,sources", ""])
def test_an_expansion_there_is_not_is_400_naming_expand(api, route, expand):
    open_talks(api)

    response = api.get(f"{BASE}/{route}", params={"expand": expand})

    assert response.status_code == 400, response.text
    assert field_of(response) == {"expand"}
    assert "because" in response.json()["errors"][0]["message"]


def test_diff_shows_the_extension_moving_the_deadline_by_its_id(api, clock):
    seed_through_geneva(api)
    clock.advance(days=1)
    ids = record_the_august_extension(api)

    changes = changes_by_path(api.get(f"{BASE}/diff", params={"from": "2025-08-01", "to": "2025-08-20"}).json())

    due = changes["deadlines.truce-expiry.due_on"]
    assert (due["before"], due["after"]) == ("2025-08-12", "2025-11-10")
    assert ids["extension"] in due["because"]
    assert changes["truce.expires_on"]["after"] == "2025-11-10"
    assert "truce.status" not in changes


def test_diff_shows_an_issue_changing_status_by_its_id(api):
    open_talks(api)
    raised, updated = append(
        api,
        {"type": "issue_raised", "occurred_on": "2025-06-01", "issue_id": "tiktok-spinoff", "title": "TikTok's US spin-off"},
        {"type": "issue_updated", "occurred_on": "2025-09-15", "issue_id": "tiktok-spinoff", "status": "resolved"},
    )

    changes = changes_by_path(api.get(f"{BASE}/diff", params={"from": "2025-05-01", "to": "2025-09-30"}).json())
    added = changes["issues.tiktok-spinoff"]
    assert added["before"] is None and added["after"]["status"] == "resolved"

    changes = changes_by_path(api.get(f"{BASE}/diff", params={"from": "2025-07-01", "to": "2025-09-30"}).json())
    status = changes["issues.tiktok-spinoff.status"]
    assert (status["before"], status["after"]) == ("open", "resolved")
    assert status["because"] == [raised["event_id"], updated["event_id"]]


def test_diff_between_two_recording_times_shows_a_correction(api, clock):
    open_talks(api)
    wrong = append(api, ieepa(FENTANYL, "2025-03-03", "2025-03-04", 25))[0]
    before_correction = clock.now
    clock.advance(days=1)
    correction = append(api, {"type": "event_corrected", "occurred_on": "2025-03-05", "target": wrong["event_id"],
                              "replacement": ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20)})[0]

    response = api.get(
        f"{BASE}/diff", params={"known_from": stamp(before_correction), "known_to": stamp(clock.now), "as_of": "2025-04-01"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["before"]["position"], body["after"]["position"]) == (wrong["position"], correction["position"])
    assert body["before"]["as_of"] == body["after"]["as_of"] == "2025-04-01"
    changes = changes_by_path(body)
    rate = changes[f"tariffs.US->CN.measures.{FENTANYL}.rate_pct"]
    assert (rate["before"], rate["after"]) == (25, 20)
    assert rate["because"] == [wrong["event_id"], correction["event_id"]]
    assert changes["tariffs.US->CN.total_additional_pct"]["after"] == 20
    same = api.get(f"{BASE}/diff", params={"known_from": stamp(clock.now), "known_to": stamp(clock.now)}).json()
    assert same["changes"] == []


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({}, {"from", "to", "known_from", "known_to"}),
        ({"from": "2025-05-13", "known_to": "2026-01-01T00:00:00Z"}, {"from", "to", "known_from", "known_to"}),
        ({"from": "2025-05-13"}, {"to"}),
        ({"known_to": "2026-01-01T00:00:00Z"}, {"known_from"}),
        ({"from": "2025-05-13", "to": "2025-05-14", "as_of": "2025-05-14"}, {"as_of"}),
        ({"known_from": "2026-01-01T00:00:00Z", "known_to": "2026-01-02T00:00:00Z", "known_at": "2026-01-01T00:00:00Z"},
         {"known_at"}),
        ({"from": "2025-05-13", "to": "2025-02-30"}, {"to"}),
        ({"known_from": "2026-01-01T00:00:00", "known_to": "2026-01-02T00:00:00Z"}, {"known_from"}),
    ],
)
def test_diff_needs_exactly_one_pair_of_times(api, params, fields):
    open_talks(api)

    response = api.get(f"{BASE}/diff", params=params)

    assert response.status_code == 400, response.text
    assert field_of(response) == fields


# --- timeline and statements ----------------------------------------------------------------


def test_timeline_is_in_world_order_even_when_recorded_out_of_order_and_pages(api, clock):
    open_talks(api)
    geneva = append(api, deadline())[0]
    clock.advance(days=1)
    backfill = append(api, ieepa(FENTANYL, "2025-02-01", "2025-02-04", 10), ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20))
    same_day = append(api, ieepa(RECIPROCAL, "2025-05-12", "2025-05-14", 34))[0]

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get(f"{BASE}/timeline", params=params).json()
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            break

    items = [item for page in pages for item in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [(i["type"], i["occurred_on"]) for i in items] == [
        ("negotiation_opened", "2025-01-20"),
        ("measure_changed", "2025-02-01"),
        ("measure_changed", "2025-03-03"),
        ("deadline_set", "2025-05-12"),
        ("measure_changed", "2025-05-12"),
    ]
    assert [i["event_id"] for i in items[1:]] == [backfill[0]["event_id"], backfill[1]["event_id"], geneva["event_id"],
                                                  same_day["event_id"]]
    assert items[3] == geneva  # the events API's envelope

    window = api.get(f"{BASE}/timeline", params={"from": "2025-03-01", "to": "2025-05-12"}).json()
    assert [i["occurred_on"] for i in window["items"]] == ["2025-03-03", "2025-05-12", "2025-05-12"]
    known_then = api.get(f"{BASE}/timeline", params={"known_at": stamp(clock.now - dt.timedelta(days=1))}).json()
    assert [i["type"] for i in known_then["items"]] == ["negotiation_opened", "deadline_set"]


def test_timeline_shows_corrections_known_at_the_time_asked(api, clock):
    open_talks(api)
    wrong = append(api, ieepa(FENTANYL, "2025-03-03", "2025-03-04", 25))[0]
    before_correction = clock.now
    clock.advance(days=1)
    correction = append(api, {"type": "event_corrected", "occurred_on": "2025-03-05", "target": wrong["event_id"],
                              "replacement": ieepa(FENTANYL, "2025-03-03", "2025-03-04", 20)})[0]

    now = api.get(f"{BASE}/timeline").json()["items"]
    then = api.get(f"{BASE}/timeline", params={"known_at": stamp(before_correction)}).json()["items"]

    assert [i["type"] for i in now] == ["negotiation_opened", "measure_changed", "event_corrected"]
    assert now[1]["corrected_by"] == [correction["event_id"]]
    assert [i["type"] for i in then] == ["negotiation_opened", "measure_changed"]
    assert "corrected_by" not in then[1]


def said(name: str, party: str, on: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "statement_made", "occurred_on": on, "speaker": {"name": name, "role": "negotiator", "party": party},
            "quote": text, **extra}


def test_statements_filter_by_speaker_party_and_topic_and_page_in_world_order(api, clock):
    open_talks(api)
    append(
        api,
        said("Scott Bessent", "US", "2025-07-29", "The truce could be extended", topics=["truce"]),
        said("He Lifeng", "CN", "2025-07-29", "Talks were candid", about=["tiktok-spinoff"]),
        said("Li Chenggang", "CN", "2025-07-30", "Both sides agreed to push for an extension", topics=["truce"]),
    )
    clock.advance(days=1)
    early = append(api, said("Scott Bessent", "US", "2025-05-12", "We reached an agreement"))[0]

    def speakers(**params: Any) -> list[str]:
        response = api.get(f"{BASE}/statements", params=params)
        assert response.status_code == 200, response.text
        return [s["speaker"]["name"] for s in response.json()["items"]]

    assert speakers() == ["Scott Bessent", "Scott Bessent", "He Lifeng", "Li Chenggang"]
    assert speakers(speaker="scott bessent") == ["Scott Bessent", "Scott Bessent"]
    assert speakers(party="CN") == ["He Lifeng", "Li Chenggang"]
    assert speakers(topic="truce") == ["Scott Bessent", "Li Chenggang"]
    assert speakers(topic="tiktok-spinoff") == ["He Lifeng"]
    assert speakers(as_of="2025-07-29") == ["Scott Bessent", "Scott Bessent", "He Lifeng"]
    assert speakers(known_at=stamp(clock.now - dt.timedelta(days=1))) == ["Scott Bessent", "He Lifeng", "Li Chenggang"]

    first = api.get(f"{BASE}/statements", params={"limit": 3}).json()
    assert first["items"][0]["event_id"] == early["event_id"]
    rest = api.get(f"{BASE}/statements", params={"limit": 3, "cursor": first["next"]}).json()
    assert [s["speaker"]["name"] for s in rest["items"]] == ["Li Chenggang"] and rest["next"] is None


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"as_of": "2025-02-30"}, "as_of"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "0000-01-01"}, "as_of"),
        ({"as_of": "10000-01-01"}, "as_of"),
        ({"as_of": "20250512"}, "as_of"),
        ({"known_at": "2026-01-01T00:00:00"}, "known_at"),
        ({"known_at": "2026-01-01"}, "known_at"),
        ({"known_at": "now"}, "known_at"),
        ({"known_at": "2026-13-01T00:00:00Z"}, "known_at"),
        ({"known_at": "0000-01-01T00:00:00Z"}, "known_at"),
        ({"known_at": "9999-12-31T23:59:59-23:59"}, "known_at"),
        ({"known_at": "2026-01-01T00:00:00+25:00"}, "known_at"),
        ({"min_position": "-1"}, "min_position"),
        ({"min_position": "many"}, "min_position"),
    ],
)
@pytest.mark.parametrize("route", ["state", "state/truce", "statements"])
def test_time_parameters_that_do_not_parse_are_400_naming_the_field(api, route, params, field):
    open_talks(api)

    response = api.get(f"{BASE}/{route}", params=params)

    assert response.status_code == 400, response.text
    assert field_of(response) == {field}


def test_timeline_dates_that_do_not_parse_are_400_naming_the_field(api):
    open_talks(api)

    for params, field in [({"from": "2025-13-01"}, "from"), ({"to": "soon"}, "to"), ({"known_at": "2026-01-01"}, "known_at"),
                          ({"cursor": "nope"}, "cursor")]:
        response = api.get(f"{BASE}/timeline", params=params)
        assert response.status_code == 400, response.text
        assert field_of(response) == {field}


def test_known_at_takes_any_offset_and_fractions(api, clock):
    open_talks(api)

    for value in ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.000000000Z", "2026-01-01t00:00:00z"):
        response = api.get(f"{BASE}/state/truce", params={"known_at": value})
        assert response.status_code == 200, (value, response.text)
        assert response.json()["known_at"] == "2026-01-01T00:00:00Z"
        assert response.json()["position"] > 0


def test_a_position_no_write_has_answered_is_422_naming_the_head(api):
    open_talks(api)
    stored = append(api, deadline())[0]

    ahead = api.get(f"{BASE}/state", params={"min_position": stored["position"] + 1})
    reached = api.get(f"{BASE}/state", params={"min_position": stored["position"]})

    assert ahead.status_code == 422
    assert field_of(ahead) == {"min_position"}
    assert ahead.json()["errors"][0]["message"] == f"is beyond the latest recorded position {stored['position']}"
    assert reached.status_code == 200
    assert reached.json()["position"] == stored["position"]


@pytest.mark.parametrize(
    "route", ["state", "state/truce", "statements", "timeline", "diff?from=2025-01-01&to=2025-02-01"]
)
def test_an_unknown_negotiation_is_404(api, route):
    open_talks(api)

    response = api.get(f"/v1/negotiations/nowhere/{route}")

    assert response.status_code == 404, response.text
    assert "nowhere" in response.json()["detail"]


def test_state_needs_a_key(api):
    open_talks(api)

    assert api.client.get(f"{BASE}/state").status_code == 401
