"""Every list route pages the same way: `limit` 1 to 1,000 (default 100), an opaque `next` cursor, null at the end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api_with, deadline, measure

TALKS = "/v1/negotiations/talks"
# Every GET route whose answer is a page, with the query each needs to list what `populated` wrote.
LIST_ROUTES: dict[str, dict[str, Any]] = {
    "/v1/negotiations": {},
    "/v1/negotiations/{negotiation_id}/events": {},
    "/v1/negotiations/{negotiation_id}/statements": {"as_of": "2030-01-01"},
    "/v1/negotiations/{negotiation_id}/timeline": {},
    "/v1/negotiations/{negotiation_id}/claims": {"as_of": "2030-01-01"},
    "/v1/events": {},
    "/v1/keys": {},
    "/v1/deadlines": {"min_position": "{position}"},
    "/v1/measures": {"min_position": "{position}"},
    "/v1/audit/events": {},
    "/v1/webhooks": {},
    "/v1/webhooks/{webhook_id}/deliveries": {},
    "/v1/sources": {},
}


def _statement(subject: str) -> dict[str, Any]:
    return {
        "type": "statement_made", "occurred_on": "2025-05-12", "speaker": {"name": "Scott Bessent", "party": "US"},
        "paraphrase": f"said something about {subject}", "claim": {"subject": subject, "value": "agreed"},
        "source": {"name": "Reuters", "published_at": "2025-05-12"},
    }


@pytest.fixture
def populated(database_url: str, clock: Any, tmp_path: Path) -> Iterator[tuple[Api, dict[str, str]]]:
    """At least three items on every list route."""
    with api_with(database_url, clock, tmp_path, webhook_allow_hosts="127.0.0.1") as api:
        for negotiation_id in ("a", "b", "talks"):
            api.open(negotiation_id)
        hook = api.post("/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, role="admin").json()["webhook"]["id"]
        for n in (2, 3):
            assert api.post("/v1/webhooks", {"url": f"http://127.0.0.1:9/hook{n}"}, role="admin").status_code == 201
        for n in range(3):
            clock.advance(seconds=1)  # a test message's id carries its time
            assert api.post(f"/v1/webhooks/{hook}/test", role="admin").status_code == 202
        for source_id in ("reuters", "xinhua", "white-house"):
            assert api.post("/v1/sources", {"id": source_id, "name": source_id, "kind": "wire"}).status_code == 201
        events = [
            *(_statement(subject) for subject in ("truce.extension", "us.tariff_on_lapse_pct", "cn.tariff_on_lapse_pct")),
            *(deadline(f"deadline-{n}", f"2031-0{n}-01") for n in (1, 2, 3)),
            *(measure(f"measure-{n}", 10 * n) for n in (1, 2, 3)),
        ]
        appended = api.post(f"{TALKS}/events", {"events": events})
        assert appended.status_code == 201, appended.text
        yield api, {"negotiation_id": "talks", "webhook_id": hook, "position": str(appended.json()["position"])}


def _get(api: Api, route: str, ids: dict[str, str], **params: Any) -> Any:
    query = {name: str(value).format(**ids) for name, value in {**LIST_ROUTES[route], **params}.items()}
    return api.get(route.format(**ids), role="admin", params=query)


def test_every_list_route_declares_the_same_limit_and_cursor(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    pages = {
        path: operation
        for path, item in schema["paths"].items()
        if (operation := item.get("get")) and "Page" in str(operation["responses"]["200"].get("content"))
    }
    assert set(pages) == set(LIST_ROUTES), "a new list route belongs in LIST_ROUTES"
    for path, operation in pages.items():
        parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        limit = parameters["limit"]["schema"]
        assert (limit["default"], limit["minimum"], limit["maximum"]) == (100, 1, 1000), path
        assert "cursor" in parameters, path


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_every_list_route_caps_limit_and_walks_its_cursor_to_the_end(populated: tuple[Api, dict[str, str]], route: str) -> None:
    api, ids = populated
    for bad in (0, 1001):
        refused = _get(api, route, ids, limit=bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["limit"]

    everything = _get(api, route, ids)
    assert everything.status_code == 200, everything.text
    assert everything.json()["next"] is None and len(everything.json()["items"]) >= 3

    for size in (1, 2):
        walked, cursor = [], None
        while True:
            page = _get(api, route, ids, limit=size, **({"cursor": cursor} if cursor else {})).json()
            assert 1 <= len(page["items"]) <= size, "a page is never empty: `next` is null once nothing follows"
            walked += page["items"]
            cursor = page["next"]
            if cursor is None:
                break
        assert walked == everything.json()["items"]
