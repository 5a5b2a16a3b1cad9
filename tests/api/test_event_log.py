"""The event log through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import msgspec
from litestar.testing import TestClient

from service.app import create_app
from tests.api.conftest import api_with, deadline, measure


def test_opening_a_negotiation_appends_negotiation_opened(api):
    body = api.open("us-china-trade-2025")
    assert body["id"] == "us-china-trade-2025"
    assert body["version"] == 1 and body["event_count"] == 1 and body["opened_by"] == "reporter-key"
    events = api.get("/v1/negotiations/us-china-trade-2025/events").json()["items"]
    assert [e["type"] for e in events] == ["negotiation_opened"]
    assert events[0]["recorded_by"] == "reporter-key"


def test_slug_is_generated_from_the_title_and_a_taken_id_is_409(api):
    first = api.post("/v1/negotiations", {"title": "US–China Trade Talks: Geneva", "parties": ["US", "CN"]})
    assert first.status_code == 201
    assert first.json()["id"] == "us-china-trade-talks-geneva"
    assert first.headers["location"] == "/v1/negotiations/us-china-trade-talks-geneva"
    again = api.post("/v1/negotiations", {"title": "US–China Trade Talks: Geneva", "parties": ["US"]})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


def test_an_appended_event_reads_back_as_sent_plus_server_fields(api, clock):
    api.open()
    sent = measure()
    response = api.post("/v1/negotiations/talks/events", sent)
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"2"'
    stored = response.json()["events"][0]
    assert response.headers["x-parley-position"] == str(stored["position"]) == str(response.json()["position"])
    for field, value in sent.items():
        if field == "source":
            assert stored["source"]["name"] == value["name"]
        else:
            assert stored[field] == value, field
    assert stored["version"] == 2
    assert stored["recorded_at"] == clock.now.isoformat().replace("+00:00", "Z")
    assert stored["recorded_by"] == "reporter-key"
    assert stored["request_id"] == response.headers["x-request-id"]
    assert len(stored["hash"]) == 64
    again = api.get(f"/v1/events/{stored['event_id']}").json()
    assert again == stored


def test_a_batch_is_stored_all_or_nothing(api):
    api.open()
    bad = api.post("/v1/negotiations/talks/events", {"events": [deadline(), deadline("x", due_on="2025-99-01")]})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "events[1].due_on"
    assert api.get("/v1/negotiations/talks").json()["version"] == 1
    good = api.post("/v1/negotiations/talks/events", {"events": [deadline(), measure(), measure(rate=20)]})
    assert good.status_code == 201
    assert [e["version"] for e in good.json()["events"]] == [2, 3, 4]
    positions = [e["position"] for e in good.json()["events"]]
    assert positions == sorted(positions) and len(set(positions)) == 3


def test_stale_if_match_is_409_with_the_current_version_and_stores_nothing(api):
    api.open()
    ok = api.post("/v1/negotiations/talks/events", deadline(), headers={"If-Match": '"1"'})
    assert ok.status_code == 201
    stale = api.post("/v1/negotiations/talks/events", deadline("other"), headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    assert stale.headers["etag"] == '"2"'
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 2


def test_idempotent_retries_store_one_event_and_return_the_first_answer(api):
    api.open()
    answers = [
        api.post("/v1/negotiations/talks/events", deadline(), headers={"Idempotency-Key": "retry-1"}) for _ in range(5)
    ]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["events"][0]["event_id"] for a in answers}) == 1
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 2
    other = api.post("/v1/negotiations/talks/events", deadline("else"), headers={"Idempotency-Key": "retry-1"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"


def test_idempotency_keys_belong_to_the_key_that_used_them(api):
    api.open()
    mine = api.post("/v1/negotiations/talks/events", deadline(), headers={"Idempotency-Key": "k"})
    theirs = api.post("/v1/negotiations/talks/events", deadline(), role="admin", headers={"Idempotency-Key": "k"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["events"][0]["event_id"] != theirs.json()["events"][0]["event_id"]


def test_corrections_and_retractions_are_new_events_and_the_original_stays_readable(api):
    api.open()
    original = api.post("/v1/negotiations/talks/events", measure(rate=10)).json()["events"][0]
    correction = api.post(
        "/v1/negotiations/talks/events",
        {"type": "event_corrected", "occurred_on": "2025-02-02", "target": original["event_id"],
         "replacement": measure(rate=15), "reason": "misread the order"},
    )
    assert correction.status_code == 201, correction.text
    retraction = api.post(
        "/v1/negotiations/talks/events",
        {"type": "event_retracted", "occurred_on": "2025-02-03", "target": original["event_id"], "reason": "duplicate"},
    )
    assert retraction.status_code == 201
    read = api.get(f"/v1/events/{original['event_id']}").json()
    assert read["rate_pct"] == 10
    assert read["corrected_by"] == [correction.json()["events"][0]["event_id"]]
    assert read["retracted_by"] == [retraction.json()["events"][0]["event_id"]]


def test_correction_rules_name_the_field(api):
    api.open()
    api.open("other")
    mine = api.post("/v1/negotiations/talks/events", measure()).json()["events"][0]["event_id"]
    theirs = api.post("/v1/negotiations/other/events", measure()).json()["events"][0]["event_id"]
    unknown = "00000000-0000-4000-8000-000000000000"
    cases = [
        ({"type": "event_retracted", "occurred_on": "2025-01-01", "target": unknown, "reason": "x"}, "target", "no event"),
        ({"type": "event_retracted", "occurred_on": "2025-01-01", "target": theirs, "reason": "x"}, "target", "belongs to negotiation 'other'"),
        ({"type": "event_corrected", "occurred_on": "2025-01-01", "target": mine, "replacement": deadline()}, "replacement.type", "measure_changed"),
    ]
    for body, field, words in cases:
        response = api.post("/v1/negotiations/talks/events", body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
        assert words in response.json()["errors"][0]["message"]
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 2


def test_stream_reads_filter_and_page(api):
    api.open()
    api.post("/v1/negotiations/talks/events", {"events": [measure(rate=r, occurred_on=f"2025-0{m}-01", topics=["tariffs"]) for m, r in ((2, 10), (3, 20), (4, 30))]})
    api.post("/v1/negotiations/talks/events", deadline())
    page = api.get("/v1/negotiations/talks/events", params={"type": "measure_changed", "limit": 2}).json()
    assert [e["rate_pct"] for e in page["items"]] == [10, 20]
    rest = api.get("/v1/negotiations/talks/events", params={"type": "measure_changed", "limit": 2, "cursor": page["next"]}).json()
    assert [e["rate_pct"] for e in rest["items"]] == [30] and rest["next"] is None
    dated = api.get("/v1/negotiations/talks/events", params={"occurred_from": "2025-03-01", "occurred_to": "2025-04-30"}).json()
    assert [e["rate_pct"] for e in dated["items"]] == [20, 30]
    topical = api.get("/v1/negotiations/talks/events", params={"topic": "tariffs"}).json()
    assert len(topical["items"]) == 3
    after = api.get("/v1/negotiations/talks/events", params={"after_version": 4}).json()
    assert [e["type"] for e in after["items"]] == ["deadline_set"]


def test_the_global_feed_pages_in_position_order(api):
    api.open("a")
    api.open("b")
    api.post("/v1/negotiations/a/events", {"events": [deadline(f"d{i}") for i in range(5)]})
    seen, cursor = [], None
    while True:
        page = api.get("/v1/events", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["items"]
        cursor = page["next"]
        if cursor is None:
            break
    assert [e["position"] for e in seen] == sorted(e["position"] for e in seen)
    assert len([e for e in seen if e["negotiation_id"] != "_audit"]) == 7  # and the keys' audit events
    after = api.get("/v1/events", params={"after": seen[4]["position"]}).json()["items"]
    assert [e["event_id"] for e in after] == [e["event_id"] for e in seen[5:]]


def test_negotiation_summary_and_list(api):
    api.open("a")
    api.post("/v1/negotiations/a/events", {"events": [deadline(occurred_on="2025-05-12"), measure(occurred_on="2025-02-01")]})
    api.open("b")
    one = api.get("/v1/negotiations/a")
    assert one.headers["etag"] == '"3"'
    body = one.json()
    assert body["event_count"] == 3 and body["parties"] == ["US", "CN"]
    assert body["first_occurred_on"] == "2025-02-01"
    listed = api.get("/v1/negotiations", params={"limit": 1}).json()
    assert [n["id"] for n in listed["items"]] == ["a"]
    assert [n["id"] for n in api.get("/v1/negotiations", params={"cursor": listed["next"]}).json()["items"]] == ["b"]


def test_health_ready_and_schema(api):
    assert api.client.get("/health").json() == {"status": "ok"}
    assert api.client.get("/ready").json()["status"] == "ready"
    schema = api.client.get("/schema/openapi.json").json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert all(op.get("operationId") for op in operations)
    append = schema["paths"]["/v1/negotiations/{negotiation_id}/events"]["post"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(append["responses"])
    assert api.client.get("/schema").status_code == 200


def test_an_event_another_process_just_appended_can_be_corrected_at_once(database_url, clock, tmp_path):
    """The writer's cached state has not seen the other process's event: it catches up instead of refusing it."""
    with api_with(database_url, clock, tmp_path, run_projections=False) as first:
        first.open()
        assert first.get("/v1/negotiations/talks/state").status_code == 200  # the first process now holds the stream's state
        settings = msgspec.structs.replace(first.client.app.state.settings, bootstrap_admin=False)
        with TestClient(create_app(settings, clock=clock)) as other:
            appended = other.post("/v1/negotiations/talks/events", json=deadline(), headers=first.headers("reporter"))
            assert appended.status_code == 201, appended.text
        target = appended.json()["events"][0]["event_id"]
        retraction = {"type": "event_retracted", "occurred_on": "2025-05-13", "target": target, "reason": "entered twice"}
        answered = first.post("/v1/negotiations/talks/events", retraction)
        assert answered.status_code == 201, answered.text
        assert answered.json()["events"][0]["version"] == 3
