"""The `agreements` part through the API: in state answers, on its own route, in diffs, with its sources."""

from __future__ import annotations

AGREEMENT = {
    "type": "agreement_reached",
    "occurred_on": "2025-05-12",
    "agreement_id": "geneva-joint-statement",
    "title": "Joint Statement on U.S.-China Economic and Trade Meeting in Geneva",
    "parties": ["US", "CN"],
    "signed_on": "2025-05-12",
    "source": {"name": "White House", "url": "https://www.whitehouse.gov/briefings-statements/2025/05/joint-statement-on-u-s-china-economic-and-trade-meeting-in-geneva/"},
}


def test_agreements_are_a_part_of_the_state_with_their_sources(api):
    api.open()
    response = api.post("/v1/negotiations/talks/events", AGREEMENT)
    assert response.status_code == 201, response.text
    event_id = response.json()["events"][0]["event_id"]
    part = api.get("/v1/negotiations/talks/state/agreements", params={"as_of": "2025-05-12"}).json()
    (agreement,) = part["agreements"]["agreements"]
    assert agreement["agreement_id"] == "geneva-joint-statement" and agreement["reached_on"] == "2025-05-12"
    assert agreement["because"] == [event_id]
    assert part["sources"][event_id]["name"] == "White House"
    assert "agreements.geneva-joint-statement" in part["corroboration"]
    whole = api.get("/v1/negotiations/talks/state", params={"as_of": "2025-05-11"}).json()
    assert whole["agreements"] == {"agreements": []}
    diff = api.get("/v1/negotiations/talks/diff", params={"from": "2025-05-11", "to": "2025-05-12"}).json()
    paths = [c["path"] for c in diff["changes"]]
    assert "agreements.geneva-joint-statement" in paths
