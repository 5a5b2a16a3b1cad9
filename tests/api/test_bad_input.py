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
    [
        ("If-Match", "yesterday"),
        ("If-Match", "\u00b3".encode()),  # a superscript three: str.isdigit() says it is a digit
        ("If-Match", "\u0663".encode()),  # an Arabic-Indic three
        ("Idempotency-Key", "x" * 256),
        ("Idempotency-Key", "has space"),
    ],
    ids=["word", "superscript digit", "arabic-indic digit", "long key", "key with space"],
)
def test_bad_headers_are_400_naming_the_header(api, header, value):
    api.open()
    response = api.post("/v1/negotiations/talks/events", deadline(), headers={header: value})
    assert response.status_code == 400
    assert _field_and_message(response)[0] == header
    assert api.get("/v1/negotiations/talks").json()["event_count"] == 1


def test_a_body_without_a_content_type_is_415(api):
    api.open()
    head = _head(api)
    response = api.client.post(
        "/v1/negotiations/talks/events", content=json.dumps(deadline()).encode(), headers=api.headers("reporter"),
    )
    assert response.status_code == 415, response.text
    assert _field_and_message(response) == ("Content-Type", "must be application/json")
    assert _head(api) == head


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


# --- hostile input: one table per place it can arrive, each with its status and the field it names ---------


def _head(api):
    return api.client.app.state.log.head()


HOSTILE_BODIES = [
    ("due_on in year 0", {**deadline(), "due_on": "0000-01-01"}, 422, "due_on", "date"),
    ("due_on in year 10000", {**deadline(), "due_on": "10000-01-01"}, 422, "due_on", "date"),
    ("due_on on 30 February", {**deadline(), "due_on": "2025-02-30"}, 422, "due_on", "date"),
    ("due_on before the world range", {**deadline(), "due_on": "1799-12-31"}, 422, "due_on", "between 1800-01-01 and 2999-12-31"),
    ("effective_from after the world range", {**measure(), "effective_from": "3000-01-01"}, 422, "effective_from", "between 1800-01-01"),
    ("huge integer", {**measure(), "source": {"name": "x", "credibility": 10**30}}, 422, "source.credibility", "<= 6"),
    ("huge negative number", {**measure(), "rate_pct": -1e308}, 422, "rate_pct", ">= 0"),
    ("batch over 1,000 events", {"events": [deadline(f"d{n}") for n in range(1001)]}, 422, "events", "length <= 1000"),
]


@pytest.mark.parametrize(("case", "body", "status", "field", "words"), HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES])
def test_hostile_bodies_are_refused_naming_the_field_and_store_nothing(api, case, body, status, field, words):
    api.open()
    head = _head(api)
    response = api.post("/v1/negotiations/talks/events", json.dumps(body))
    assert response.status_code == status, response.text
    got_field, message = _field_and_message(response)
    assert (got_field, words in message) == (field, True), message
    assert _head(api) == head


STATEMENT = {"type": "statement_made", "occurred_on": "2025-05-12", "speaker": {"name": "Bessent"}, "quote": "Q"}
ROUND = {"type": "round_held", "occurred_on": "2025-05-12", "round_id": "geneva", "name": "Geneva", "starts_on": "2025-05-10"}


@pytest.mark.parametrize(("body", "field", "words"), [
    ({**deadline(), "source": {"name": "x", "published_at": "3000-01-01"}}, "source.published_at", "between"),
    ({**deadline(), "source": {"name": "Reu\u0000ters"}}, "source.name", "NUL"),
    ({**STATEMENT, "speaker": {"name": "Bes\u0000sent"}}, "speaker.name", "NUL"),
    ({**ROUND, "delegations": {"US": [{"name": "Bessent"}, {"name": "Gr\u0000eer"}]}}, "delegations.US[1].name", "NUL"),
    ({**deadline(), "topics": ["tariffs", "rare\u0000earths"]}, "topics[1]", "matching"),
], ids=["date in a source", "NUL in a source", "NUL in a speaker", "NUL in a delegation", "NUL in a topic (its pattern)"])
def test_a_broken_rule_in_a_nested_value_names_its_full_path(api, body, field, words):
    api.open()
    head = _head(api)
    response = api.post("/v1/negotiations/talks/events", body)
    assert response.status_code == 422, response.text
    got_field, message = _field_and_message(response)
    assert (got_field, words in message) == (field, True), message
    assert _head(api) == head


HOSTILE_RAW = [
    ("lone surrogate escape", b'{"type":"deadline_set","occurred_on":"2025-01-01","deadline_id":"a","title":"\\udc00","due_on":"2025-01-02"}', 400, "surrogate"),
    ("surrogate encoded as UTF-8", b'{"type":"deadline_set","occurred_on":"2025-01-01","deadline_id":"a","title":"\xed\xa0\x80","due_on":"2025-01-02"}', 400, "UTF-8"),
    ("invalid UTF-8 in a key", b'{"ty\xffpe":"deadline_set"}', 400, "UTF-8"),
    ("NaN", b'{"type":"measure_changed","rate_pct":NaN}', 400, "malformed"),
    ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, 400, "nested too deep"),
    ("over 1 MiB of whitespace", b" " * (1024 * 1024 + 1) + b"{}", 413, "over the limit"),
]


@pytest.mark.parametrize(("case", "raw", "status", "words"), HOSTILE_RAW, ids=[c[0] for c in HOSTILE_RAW])
def test_bodies_that_are_not_json_are_refused_as_a_whole_and_store_nothing(api, case, raw, status, words):
    api.open()
    head = _head(api)
    response = api.post("/v1/negotiations/talks/events", raw)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and words in body["detail"], body
    assert body.get("errors", [{"field": "$"}])[0]["field"] == "$"
    assert _head(api) == head


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "text/json", "image/png",
        "", "application/evil+json", "application/problem+json",
    ],
)
def test_bodies_sent_as_anything_but_json_are_415_naming_content_type(api, content_type):
    api.open()
    head = _head(api)
    response = api.post("/v1/negotiations/talks/events", None, content=json.dumps(deadline()), headers={"content-type": content_type})
    assert response.status_code == 415, response.text
    assert _field_and_message(response) == ("Content-Type", "must be application/json")
    assert _head(api) == head


@pytest.mark.parametrize(
    "key",
    [b"a\r\nX-Injected: 1", b"a\nb", b"a\rb", "café".encode(), b"a\tb", b"\x7f", b"", b"k" * 1000],
    ids=["CR LF injection", "LF", "CR", "non-ASCII", "tab", "DEL", "empty", "1,000 characters"],
)
def test_hostile_idempotency_keys_are_400_naming_the_header_and_store_nothing(api, key):
    api.open()
    head = _head(api)
    response = api.post("/v1/negotiations/talks/events", deadline(), headers={"Idempotency-Key": key})
    assert response.status_code == 400, response.text
    assert _field_and_message(response) == ("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces")
    assert "x-injected" not in response.headers
    assert _head(api) == head


# A literal ../ never leaves the client: URL normalisation removes it before a request is sent.
TRAVERSALS = ["..%2F..%2Fv1%2Fkeys", "%2e%2e%2f%2e%2e%2fv1%2fkeys", "%2e%2e", "..%5C..%5Cv1"]
ID_ROUTES = [
    ("GET", "/v1/negotiations/{}"),
    ("GET", "/v1/negotiations/{}/events"),
    ("GET", "/v1/negotiations/{}/state"),
    ("POST", "/v1/negotiations/{}/events"),
    ("GET", "/v1/events/{}"),
    ("GET", "/v1/events/{}/history"),
    ("GET", "/v1/keys/{}"),
    ("DELETE", "/v1/keys/{}"),
    ("GET", "/v1/webhooks/{}"),
    ("DELETE", "/v1/webhooks/{}"),
]


@pytest.mark.parametrize("traversal", TRAVERSALS)
@pytest.mark.parametrize(("method", "route"), ID_ROUTES, ids=[f"{m} {r}" for m, r in ID_ROUTES])
def test_path_traversal_in_ids_is_404_and_touches_nothing(api, method, route, traversal):
    api.open()
    head = _head(api)
    response = api.client.request(method, route.format(traversal), headers=api.headers("admin"), json=deadline() if method == "POST" else None)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert _head(api) == head
    assert api.get("/v1/keys", role="admin").json()["items"]  # no key was revoked on the way


@pytest.mark.parametrize("nul", ["a%00b", "%00"])
@pytest.mark.parametrize(("method", "route"), ID_ROUTES, ids=[f"{m} {r}" for m, r in ID_ROUTES])
def test_nul_in_an_id_is_400_naming_the_path_parameter(api, method, route, nul):
    api.open()
    head = _head(api)
    response = api.client.request(method, route.format(nul), headers=api.headers("admin"), json=deadline() if method == "POST" else None)
    assert response.status_code == 400, response.text
    field, message = _field_and_message(response)
    assert field.endswith("_id") and message == "must not contain NUL characters"
    assert _head(api) == head


@pytest.mark.parametrize(
    ("route", "params"),
    [("/v1/measures", {"imposed_by": "US\x00"}), ("/v1/deadlines", {"negotiation": "\x00"}), ("/v1/webhooks", {"cursor": "a\x00"}),
     ("/v1/keys", {"cursor": "\x00"}), ("/v1/audit/events", {"recorded_by": "a\x00"})],
)
def test_nul_in_a_filter_is_400_naming_it(api, route, params):
    response = api.get(route, role="admin", params=params)
    assert response.status_code == 400, response.text
    assert _field_and_message(response) == (next(iter(params)), "must not contain NUL characters")


@pytest.mark.parametrize("path", ["/v1/negotiations/talks%2F/events", "/v1/negotiations/talks%2f%2e%2e%2ftalks/events", "/v1/negotiations/talks%5C/events"])
def test_an_encoded_slash_never_reaches_another_resource(api, path):
    api.open()
    head = _head(api)
    response = api.post(path, deadline())
    assert response.status_code == 404, response.text
    # a path that reaches no route at all is the router's plain 404
    assert response.json().get("errors", [{"field": "path"}])[0]["field"] == "path"
    assert _head(api) == head


LIST_ROUTES = ["/v1/negotiations", "/v1/negotiations/talks/timeline", "/v1/keys", "/v1/webhooks", "/v1/deadlines", "/v1/audit/events"]


@pytest.mark.parametrize(("limit", "words"), [("0", ">= 1"), ("-1", ">= 1"), ("1001", "<= 1000"), (str(10**30), "<= 1000"), ("abc", "Expected `int`")])
@pytest.mark.parametrize("route", LIST_ROUTES)
def test_absurd_limits_are_400_naming_limit(api, route, limit, words):
    api.open()
    response = api.get(route, role="admin", params={"limit": limit})
    assert response.status_code == 400, response.text
    field, message = _field_and_message(response)
    assert (field, words in message) == ("limit", True), message


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"as_of": "1799-12-31"}, "as_of", "between 1800-01-01 and 2999-12-31"),
        ({"as_of": "3000-01-01"}, "as_of", "between 1800-01-01 and 2999-12-31"),
        ({"as_of": "0000-01-01"}, "as_of", "between 1800-01-01 and 2999-12-31"),
        ({"as_of": "2025-02-30"}, "as_of", "between 1800-01-01 and 2999-12-31"),
        ({"known_at": "10000-01-01T00:00:00Z"}, "known_at", "RFC 3339"),
        ({"known_at": "2026-01-01T00:00:00Z\r\nX-Injected: 1"}, "known_at", "RFC 3339"),
        ({"known_at": "2026-01-01T00:00:00Z\x00"}, "known_at", "must not contain NUL"),
    ],
    ids=["as_of before 1800", "as_of in 3000", "as_of in year 0", "as_of on 30 February", "known_at in year 10000",
         "known_at with CR LF", "known_at with NUL"],
)
@pytest.mark.parametrize("route", ["state", "state/truce", "statements", "claims"])
def test_world_dates_outside_the_one_range_and_malformed_known_at_are_400(api, route, params, field, words):
    api.open()
    response = api.get(f"/v1/negotiations/talks/{route}", params=params)
    assert response.status_code == 400, response.text
    got_field, message = _field_and_message(response)
    assert (got_field, words in message) == (field, True), message


@pytest.mark.parametrize("params", [{"from": "1799-12-31", "to": "2025-01-01"}, {"from": "2025-01-01", "to": "3000-01-01"}])
def test_timeline_bounds_outside_the_world_range_are_400(api, params):
    api.open()
    response = api.get("/v1/negotiations/talks/timeline", params=params)
    assert response.status_code == 400
    assert _field_and_message(response)[0] in params


def test_the_edges_of_the_world_range_and_a_far_future_known_at_are_answered(api):
    # as_of takes any date events may carry; known_at past now reads everything recorded so far.
    api.open()
    for params in ({"as_of": "1800-01-01"}, {"as_of": "2999-12-31"}, {"known_at": "9999-12-31T23:59:59Z"}):
        response = api.get("/v1/negotiations/talks/state", params=params)
        assert response.status_code == 200, (params, response.text)
    assert api.post("/v1/negotiations/talks/events", deadline(due_on="2999-12-31", occurred_on="1800-01-01")).status_code == 201
