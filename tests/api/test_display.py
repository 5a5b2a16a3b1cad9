"""Every event the API returns says how to show it (`display`, from events/describe.py), and an event read back
can be posted again with its `display` still on it."""

from __future__ import annotations

from events.describe import LANES
from tests.api.conftest import deadline, measure


def _shown(api, path: str) -> list[dict]:
    response = api.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["items"] if isinstance(body, dict) and "items" in body else [body]


def test_every_route_that_returns_events_gives_each_its_display(api):
    api.open()
    written = api.post("/v1/negotiations/talks/events", {"events": [measure(rate=20), deadline()]}).json()["events"]
    event_id = written[0]["event_id"]
    routes = [
        "/v1/events",
        f"/v1/events/{event_id}",
        "/v1/negotiations/talks/events",
        "/v1/negotiations/talks/timeline",
        "/v1/audit/events",
    ]
    for path in routes:
        for item in _shown(api, path):
            shown = item["display"]
            assert set(shown) == {"title", "summary", "detail", "lane", "group"}, path
            assert shown["lane"] in LANES and shown["title"] and shown["summary"], path
    assert written[0]["display"]["lane"] == "measures"
    assert written[0]["display"]["group"] == "Measures: US→CN"
    assert written[0]["display"]["title"].startswith("US → CN: ")
    assert "20%" in written[0]["display"]["title"]
    assert written[1]["display"] == {
        "title": "Deadline truce-expiry set: Truce expiry, due 2025-08-12",
        "summary": written[1].get("summary") or "Deadline truce-expiry set: Truce expiry, due 2025-08-12",
        "detail": "",
        "lane": "deadlines",
        "group": "Deadlines",
    }
    history = api.get(f"/v1/events/{event_id}/history").json()["records"]
    assert history[0]["display"] == written[0]["display"]


def test_an_event_read_back_posts_again_with_its_display_on_it(api):
    api.open()
    stored = api.post("/v1/negotiations/talks/events", measure(rate=20)).json()["events"][0]
    server_set = {"event_id", "negotiation_id", "version", "position", "recorded_at", "recorded_by", "request_id", "hash"}
    again = {k: v for k, v in stored.items() if k not in server_set}
    assert "display" in again
    response = api.post("/v1/negotiations/talks/events", again)
    assert response.status_code == 201, response.text
    replacement = {**again, "rate_pct": 25}
    correction = {"type": "event_corrected", "occurred_on": "2025-02-02", "target": stored["event_id"], "replacement": replacement}
    response = api.post("/v1/negotiations/talks/events", correction)
    assert response.status_code == 201, response.text
    corrected = api.get(f"/v1/events/{stored['event_id']}").json()
    assert corrected["corrected_by"]
