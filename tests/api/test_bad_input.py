"""Bad input: a clear 4xx naming the field and the reason, nothing stored, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import deadline, measure


def _field_and_message(response):
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert body["status"] == response.status_code and body["title"] and body["detail"] and body["request_id"]
    return body.get("errors", [{}])[0].get("field"), body.get("errors", [{}])[0].get("message", "")


CASES = [
    ("unknown type", {"type": "tariff_raised", "occurred_on": "2025-01-01"}, 422, "type", "allowed types: agreement_reached"),
    ("missing field", {k: v for k, v in deadline().items() if k != "due_on"}, 422, "due_on", "required field is missing"),
    ("extra field", {**deadline(), "colour": "red"}, 422, "colour", "is not a field"),
    ("reserved field", {**deadline(), "recorded_by": "someone-else"}, 422, "recorded_by", "set by the server"),
    ("reserved recorded_at", {**deadline(), "recorded_at": "2020-01-01T00:00:00Z"}, 422, "recorded_at", "set by the server"),
    ("mistyped field", {**measure(), "rate_pct": "ten"}, 422, "rate_pct", "Expected `float"),
    ("unparseable date", {**deadline(), "due_on": "12/08/2025"}, 422, "due_on", "date"),
    ("until before from", {**measure(), "effective_until": "2025-01-01"}, 422, "effective_until", "on or after effective_from"),
    ("NUL character", {**deadline(), "title": "truce\u0000expiry"}, 422, "title", "NUL"),
    ("string past its limit", {**deadline(), "title": "x" * 201}, 422, "title", "length <= 200"),
    ("bad slug", {**deadline(), "deadline_id": "Truce Expiry"}, 422, "deadline_id", "matching regex"),
    ("year out of range", {**deadline(), "occurred_on": "0001-01-01"}, 422, "occurred_on", "between"),
    ("unknown time zone", {**deadline(), "time_zone": "Mars/Olympus"}, 422, "time_zone", "IANA"),
    ("huge number", {**measure(), "rate_pct": 1e308}, 422, "rate_pct", "<= 10000"),
    ("not an object", [1, 2, 3], 422, "$", "Expected `object`"),
    ("no type", {"occurred_on": "2025-01-01"}, 422, "type", "required"),
    ("empty batch", {"events": []}, 422, "events", "length >= 1"),
]


@pytest.mark.parametrize(("case", "body", "status", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_events_are_refused_with_the_field_and_reason(api, case, body, status, field, words):
    api.open()
    response = api.post("/v1/negotiations/talks/events", json.dumps(body))
    assert response.status_code == status, response.text
    got_field, message = _field_and_message(response)
    assert got_field == field
    assert words in message
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 1


@pytest.mark.parametrize(
    ("case", "raw", "status"),
    [
        ("not JSON", b"{not json", 400),
        ("truncated JSON", b'{"type": "deadline_set", ', 400),
        ("nested 1,000 deep", b"[" * 1000 + b"]" * 1000, 400),
        ("nested 1,000 deep in a field", b'{"type":"deadline_set","summary":' + b"[" * 1000 + b"]" * 1000 + b"}", 400),
        ("over 1 MiB", b'{"type":"deadline_set","summary":"' + b"x" * (1024 * 1024) + b'"}', 413),
        ("invalid UTF-8", b'{"type":"deadline_set","title":"\xff\xfe"}', 400),
        ("lone surrogate", b'{"type":"deadline_set","occurred_on":"2025-01-01","deadline_id":"a","title":"\\ud800","due_on":"2025-01-02"}', 400),
    ],
)
def test_malformed_bodies_are_4xx_and_store_nothing(api, case, raw, status):
    api.open()
    response = api.post("/v1/negotiations/talks/events", raw)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 1


def test_unknown_negotiation_is_404(api):
    response = api.post("/v1/negotiations/nowhere/events", deadline())
    assert response.status_code == 404
    assert "nowhere" in response.json()["detail"]
    assert api.get("/v1/negotiations/nowhere").status_code == 404
    assert api.get("/v1/events/00000000-0000-4000-8000-000000000000").status_code == 404


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/events", {"after": "99999999999999999999999999"}),
        ("/v1/events", {"limit": "100000"}),
        ("/v1/events", {"limit": "0"}),
        ("/v1/events", {"after": "-1"}),
        ("/v1/events", {"cursor": "not-a-cursor"}),
        ("/v1/negotiations/talks/events", {"after_version": "99999999999999999999999999"}),
        ("/v1/negotiations/talks/events", {"occurred_from": "2025-02-30"}),
    ],
)
def test_query_parameters_that_do_not_parse_are_400(api, path, params):
    api.open()
    response = api.get(path, params=params)
    assert response.status_code == 400, response.text
    field, _ = _field_and_message(response)
    assert field in set(params)


def test_huge_integers_and_odd_ids_in_paths_are_404_not_500(api):
    api.open()
    for path in ("/v1/events/99999999999999999999999999", "/v1/negotiations/99999999999999999999999999",
                 "/v1/negotiations/..%2F..%2Fetc/events", "/v1/keys/99999999999999999999"):
        response = api.get(path, role="admin")
        assert response.status_code == 404, (path, response.text)


@pytest.mark.parametrize(
    ("header", "value"),
    [("If-Match", "yesterday"), ("Idempotency-Key", "x" * 256), ("Idempotency-Key", "has space")],
)
def test_bad_headers_are_400_naming_the_header(api, header, value):
    api.open()
    response = api.post("/v1/negotiations/talks/events", deadline(), headers={header: value})
    assert response.status_code == 400
    assert _field_and_message(response)[0] == header
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 1


def test_wrong_content_type_is_415(api):
    api.open()
    response = api.post("/v1/negotiations/talks/events", None, content=json.dumps(deadline()), headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert _field_and_message(response)[0] == "Content-Type"


def test_negotiation_opened_cannot_be_appended_to_an_existing_stream(api):
    api.open()
    response = api.post("/v1/negotiations/talks/events", {"type": "negotiation_opened", "occurred_on": "2025-01-01", "title": "x", "parties": ["US"]})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "x", "title": "T", "parties": ["US"], "occurred_on": "0558-03-27"}, "occurred_on"),
        ({"id": "x", "title": "T\u0000", "parties": ["US"]}, "title"),
        ({"id": "X Y", "title": "T", "parties": ["US"]}, "id"),
        ({"title": "T", "parties": []}, "parties"),
    ],
)
def test_bad_negotiations_are_422_naming_the_field(api, body, field):
    response = api.post("/v1/negotiations", body)
    assert response.status_code == 422, response.text
    assert _field_and_message(response)[0] == field
    assert api.get("/v1/negotiations").json()["items"] == []
