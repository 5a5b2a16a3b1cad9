"""The source registry, the sources behind state answers, and claims by subject, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
from typing import Any

import msgspec
import pytest

from service.queries.reasons import NOT_EXPANDED
from service.queries.state import part_at, state_at
from service.queries.store import ReadStore
from tests.api.conftest import deadline, measure

TALKS = "us-china-trade-2025"
BASE = f"/v1/negotiations/{TALKS}"
REUTERS = {"id": "reuters", "name": "Reuters", "kind": "wire", "url": "https://www.reuters.com", "reliability": "B"}
WHITE_HOUSE = {"id": "white-house", "name": "The White House", "kind": "official", "reliability": "A"}


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def append(api: Any, *events: dict[str, Any]) -> list[str]:
    response = api.post(f"{BASE}/events", {"events": list(events)})
    assert response.status_code == 201, response.text
    return [e["event_id"] for e in response.json()["events"]]


# --- the registry --------------------------------------------------------------------------------


def test_a_reporter_registers_a_source_that_readers_list_and_get(api: Any) -> None:
    created = api.post("/v1/sources", REUTERS)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/sources/reuters"
    body = created.json()
    assert {k: body[k] for k in REUTERS} == REUTERS
    assert body["created_by"] == "reporter-key" and body["created_at"].endswith("Z")
    assert api.post("/v1/sources", {"id": "state-dept", "name": "US State Department", "kind": "official"}, role="admin").status_code == 201
    listed = api.get("/v1/sources").json()
    assert [s["id"] for s in listed["items"]] == ["reuters", "state-dept"] and listed["next"] is None
    assert api.get("/v1/sources/state-dept").json()["reliability"] is None
    assert api.get("/v1/sources/reuters").json() == body


def test_sources_page_by_id(api: Any) -> None:
    for source_id in ("c-source", "a-source", "b-source"):
        assert api.post("/v1/sources", {"id": source_id, "name": source_id, "kind": "analyst"}).status_code == 201
    first = api.get("/v1/sources", params={"limit": 2}).json()
    assert [s["id"] for s in first["items"]] == ["a-source", "b-source"] and first["next"]
    rest = api.get("/v1/sources", params={"limit": 2, "cursor": first["next"]}).json()
    assert [s["id"] for s in rest["items"]] == ["c-source"] and rest["next"] is None
    bad = api.get("/v1/sources", params={"cursor": "nope"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"


def test_a_taken_source_id_is_409_and_an_unknown_one_404(api: Any) -> None:
    assert api.post("/v1/sources", REUTERS).status_code == 201
    again = api.post("/v1/sources", {**REUTERS, "name": "Thomson Reuters"}, role="admin")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["errors"] == [{"field": "id", "message": "is taken"}]
    assert api.get("/v1/sources/reuters").json()["name"] == "Reuters"
    missing = api.get("/v1/sources/ap")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "source_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**REUTERS, "kind": "blog"}, "kind"),
        ({**REUTERS, "reliability": "G"}, "reliability"),
        ({**REUTERS, "id": "Not A Slug"}, "id"),
        ({**REUTERS, "url": "ftp://example.org"}, "url"),
        ({k: v for k, v in REUTERS.items() if k != "name"}, "name"),
        ({**REUTERS, "credibility": 2}, "credibility"),
    ],
)
def test_an_invalid_source_is_422_naming_the_field(api: Any, body: dict[str, Any], field: str) -> None:
    response = api.post("/v1/sources", body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    assert api.get("/v1/sources").json()["items"] == []


def test_a_reader_may_not_register_a_source(api: Any) -> None:
    response = api.post("/v1/sources", REUTERS, role="reader")
    assert response.status_code == 403
    assert api.get("/v1/sources").json()["items"] == []


# --- sources behind state answers ----------------------------------------------------------------


def test_state_values_carry_their_sources_grades_and_corroboration(api: Any) -> None:
    assert api.post("/v1/sources", WHITE_HOUSE).status_code == 201
    api.open(TALKS)
    official = {"id": "white-house", "name": "The White House", "published_at": "2025-05-12", "credibility": 1}
    expiry, fentanyl, reciprocal, truce = append(
        api,
        deadline(source=official),
        measure(source={**official, "published_at": "2025-02-01", "credibility": 2}),
        measure("us-ieepa-reciprocal-cn", 10, occurred_on="2025-04-02", effective_from="2025-04-05",
                source={"name": "Reuters", "credibility": 3}),
        {"type": "truce_agreed", "occurred_on": "2025-05-12", "truce_id": "geneva-truce", "effective_from": "2025-05-14",
         "deadline_id": "truce-expiry", "source": official},
    )
    answer = api.get(f"{BASE}/state", params={"as_of": "2025-06-01"}).json()
    sources = answer["sources"]
    # graded from the registry where the event leaves kind and reliability out; credibility is the report's own
    assert sources[expiry] == {"name": "The White House", "id": "white-house", "kind": "official", "title": None, "url": None,
                               "published_at": "2025-05-12", "reliability": "A", "credibility": 1, "registered": True}
    assert (sources[fentanyl]["credibility"], sources[fentanyl]["reliability"]) == (2, "A")
    # an inline source without an id is reported as sent, not graded from the registry
    assert (sources[reciprocal]["registered"], sources[reciprocal]["reliability"]) == (None, None)
    assert set(sources) == {expiry, fentanyl, reciprocal, truce}
    corroboration = answer["corroboration"]
    assert corroboration["truce"] == {"sources": ["white-house"], "corroborated": False}
    assert corroboration["tariffs.US->CN"] == {"sources": ["white-house", "reuters"], "corroborated": True}
    assert corroboration["deadlines.truce-expiry"]["corroborated"] is False

    part = api.get(f"{BASE}/state/truce", params={"as_of": "2025-06-01"}).json()
    assert set(part["sources"]) == {expiry, truce} and part["sources"][truce]["registered"] is True
    assert part["corroboration"] == {"truce": {"sources": ["white-house"], "corroborated": False}}


def test_a_source_without_an_id_is_graded_as_reported_and_a_correction_brings_its_own(api: Any, clock: Any) -> None:
    api.open(TALKS)
    (original,) = append(api, measure(source={"name": "CNBC", "kind": "newspaper", "reliability": "B", "credibility": 2}))
    clock.advance(minutes=1)
    (correction,) = append(
        api,
        {"type": "event_corrected", "occurred_on": "2025-02-02", "target": original,
         "source": {"name": "Federal Register", "kind": "official", "reliability": "A", "credibility": 1},
         "replacement": measure(rate=10, source={"name": "Federal Register"})},
    )
    answer = api.get(f"{BASE}/state/tariffs", params={"as_of": "2025-03-01"}).json()
    assert answer["sources"][original]["name"] == "CNBC" and answer["sources"][original]["registered"] is None
    assert answer["sources"][correction]["name"] == "Federal Register"
    assert answer["corroboration"]["tariffs.US->CN"] == {"sources": ["cnbc", "federal register"], "corroborated": True}


# --- claims on the shipped dataset ---------------------------------------------------------------


def _dataset() -> list[dict[str, Any]]:
    text = importlib.resources.files("events.datasets").joinpath(f"{TALKS}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_dataset(api: Any, clock: Any) -> tuple[list[dict[str, Any]], list[str], dt.datetime]:
    """The dataset through the API: the opening, then a batch up to 10 Aug, then the 11 Aug events a day later."""
    opening, *rest = _dataset()
    # what POST /v1/negotiations takes of a negotiation_opened (it has no summary or confidence)
    body = {k: opening[k] for k in ("title", "parties", "description", "occurred_on", "source", "topics")}
    assert api.post("/v1/negotiations", {"id": TALKS, **body}).status_code == 201
    before = [e for e in rest if e["occurred_on"] < "2025-08-11"]
    after = [e for e in rest if e["occurred_on"] >= "2025-08-11"]
    clock.advance(minutes=1)
    ids = append(api, *before)
    known_before = clock.now
    clock.advance(days=1)
    ids += append(api, *after)
    return rest, ids, known_before


def test_the_served_answer_is_the_query_layers_typed_answer_encoded(api: Any, clock: Any) -> None:
    """The route sends its parts encoded once and reads the sources off those bytes; the CLI's typed answer, encoded,
    is the same JSON, sources, corroboration and expanded events included."""
    _, _, known_before = load_dataset(api, clock)
    store = ReadStore.over(api.client.app.state.log)
    for day, at in [(dt.date(2025, 5, 20), clock.now), (dt.date(2025, 8, 20), known_before), (dt.date(2025, 8, 20), clock.now)]:
        for expand in (NOT_EXPANDED, frozenset({"because"})):
            params = {"as_of": day.isoformat(), "known_at": stamp(at), **({"expand": "because"} if expand else {})}
            served = api.get(f"{BASE}/state", params=params)
            typed = state_at(store, TALKS, day, at, None, expand=expand)
            assert served.status_code == 200 and served.content == msgspec.json.encode(typed)
            assert typed.sources and typed.corroboration and (typed.because_events is not None) == bool(expand)
            part = api.get(f"{BASE}/state/tariffs", params=params)
            assert part.content == msgspec.json.encode(part_at(store, TALKS, "tariffs", day, at, None, expand=expand))


def _subject(api: Any, subject: str, **params: str) -> dict[str, Any]:
    items = api.get(f"{BASE}/claims", params=params).json()["items"]
    found = [s for s in items if s["subject"] == subject]
    assert len(found) == 1, items
    return found[0]


def test_claims_on_the_dataset_settle_the_stockholm_dispute_and_contradict_the_145(api: Any, clock: Any) -> None:
    events, ids, known_before = load_dataset(api, clock)
    by = {i: e for i, e in zip(ids, events, strict=True)}

    def the(**wanted: Any) -> str:
        found = [i for i, e in by.items() if all(e.get(k) == v for k, v in wanted.items())]
        assert len(found) == 1, wanted
        return found[0]

    li = the(type="statement_made", claim={"subject": "truce.extension", "value": "agreed"})
    bessent = the(type="statement_made", claim={"subject": "truce.extension", "value": "not_agreed"})
    likely = the(type="statement_made", claim={"subject": "truce.extension", "value": "likely"})
    order = the(type="deadline_extended", deadline_id="truce-expiry", occurred_on="2025-08-11")
    extended = the(type="truce_extended", occurred_on="2025-08-11")

    single = _subject(api, "truce.extension", as_of="2025-07-22")
    assert (single["status"], [c["event_id"] for c in single["values"]]) == ("single", [likely])

    stockholm = _subject(api, "truce.extension", as_of="2025-07-29")
    assert stockholm["status"] == "disputed" and stockholm["settled_by"] is None
    said = {c["event_id"]: (c["speaker"], c["party"], c["value"]) for c in stockholm["values"]}
    assert said[li] == ("Li Chenggang", "CN", "agreed") and said[bessent] == ("Scott Bessent", "US", "not_agreed")
    # known before the 11 August events were recorded, the dispute stands whatever the date asked about
    assert _subject(api, "truce.extension", as_of="2025-09-01", known_at=stamp(known_before))["status"] == "disputed"

    settled = _subject(api, "truce.extension", as_of="2025-08-11")
    assert (settled["status"], settled["settled_by"], settled["settled_on"], settled["settled_value"]) == (
        "confirmed", order, "2025-08-11", "agreed",
    )
    assert {order, extended} <= set(settled["because"])
    verdicts = {c["event_id"]: c["verdict"] for c in settled["values"]}
    assert (verdicts[li], verdicts[bessent]) == ("confirmed", "contradicted")

    article = the(type="statement_made", claim={"subject": "us.tariff_on_lapse_pct", "value": "145"})
    back = the(type="measure_changed", measure_id="us-ieepa-reciprocal-cn", occurred_on="2025-05-12", status="suspended")  # its rate on lapse
    lapse = _subject(api, "us.tariff_on_lapse_pct", as_of="2025-09-01")
    assert (lapse["status"], lapse["settled_value"], lapse["settled_by"]) == ("contradicted", "34", back)
    assert lapse["values"][0]["event_id"] == article and lapse["values"][0]["verdict"] == "contradicted"
    assert lapse["values"][0]["source"]["name"] == "AgroLatam"

    contradicted = api.get(f"{BASE}/claims", params={"status": "contradicted", "as_of": "2025-09-01"}).json()
    assert [s["subject"] for s in contradicted["items"]] == ["us.tariff_on_lapse_pct"]
    confirmed = api.get(f"{BASE}/claims", params={"status": "confirmed", "as_of": "2025-09-01"}).json()
    assert [s["subject"] for s in confirmed["items"]] == ["truce.extension"]


def test_claims_page_in_world_order_and_refuse_an_unknown_status(api: Any, clock: Any) -> None:
    api.open(TALKS)
    person = {"name": "Scott Bessent", "party": "US"}
    for day, subject in (("2025-07-01", "b.subject"), ("2025-07-02", "a.subject"), ("2025-07-03", "c.subject")):
        append(api, {"type": "statement_made", "occurred_on": day, "speaker": person, "paraphrase": "said so",
                     "claim": {"subject": subject, "value": "yes"}})
    first = api.get(f"{BASE}/claims", params={"limit": 2, "as_of": "2025-08-01"}).json()
    assert [s["subject"] for s in first["items"]] == ["b.subject", "a.subject"] and first["next"]
    rest = api.get(f"{BASE}/claims", params={"limit": 2, "as_of": "2025-08-01", "cursor": first["next"]}).json()
    assert [s["subject"] for s in rest["items"]] == ["c.subject"] and rest["next"] is None
    bad = api.get(f"{BASE}/claims", params={"status": "rumoured"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"
    assert api.get("/v1/negotiations/nope/claims").status_code == 404


def test_an_event_naming_an_unregistered_source_id_is_refused(api):
    api.open()
    unregistered = {**deadline(), "source": {"name": "Reuters", "id": "reuters"}}
    refused = api.post("/v1/negotiations/talks/events", unregistered)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "source.id"
    assert api.post("/v1/sources", REUTERS).status_code == 201
    assert api.post("/v1/negotiations/talks/events", unregistered).status_code == 201
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 2


def test_claims_expand_because_names_each_claim_and_what_settled_it(api: Any) -> None:
    api.open(TALKS)
    wire = {"name": "Anadolu Agency", "url": "https://www.aa.com.tr/en", "reliability": "B", "credibility": 1}
    _, _, li, bessent, order = append(
        api,
        deadline(),
        {"type": "truce_agreed", "occurred_on": "2025-05-12", "truce_id": "geneva-truce", "effective_from": "2025-05-14",
         "deadline_id": "truce-expiry"},
        {"type": "statement_made", "occurred_on": "2025-07-29", "speaker": {"name": "Li Chenggang", "party": "CN"},
         "paraphrase": "Both sides agreed to extend the pause", "claim": {"subject": "truce.extension", "value": "agreed"},
         "source": wire},
        {"type": "statement_made", "occurred_on": "2025-07-29", "speaker": {"name": "Scott Bessent", "party": "US"},
         "paraphrase": "Nothing is agreed until the President decides", "claim": {"subject": "truce.extension", "value": "not_agreed"},
         "source": {"name": "AP"}},
        {"type": "deadline_extended", "occurred_on": "2025-08-11", "deadline_id": "truce-expiry", "due_on": "2025-11-10",
         "source": {"name": "The White House", "url": "https://www.whitehouse.gov"}},
    )
    assert api.get(f"{BASE}/claims", params={"as_of": "2025-09-01"}).json()["because_events"] is None

    page = api.get(f"{BASE}/claims", params={"as_of": "2025-09-01", "expand": "because"}).json()

    (subject,) = page["items"]
    why = page["because_events"]
    assert set(why) == {li, bessent, order} == set(subject["because"])
    assert (why[li]["type"], why[li]["occurred_on"], why[li]["source"]["url"]) == ("statement_made", "2025-07-29", wire["url"])
    assert "Both sides agreed to extend the pause" in why[li]["display"]["summary"]
    assert subject["settled_by"] == order and subject["status"] == "confirmed"
    assert (why[order]["type"], why[order]["occurred_on"]) == ("deadline_extended", "2025-08-11")
    assert why[order]["display"]["summary"] == "Deadline truce-expiry extended to 2025-11-10"
