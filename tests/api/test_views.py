"""Persisted views across negotiations: kept by runners that follow the log, tracked with their rows."""

from __future__ import annotations

import datetime as dt

from litestar.testing import TestClient

from service.followers.views import ViewRunner, open_view_tables
from projections.state import fold
from service.followers.tables import DEADLINES, MEASURES
from service.app import create_app
from service.settings import Settings
from tests.api.conftest import deadline, measure


def _ids(page):
    return [(i["negotiation_id"], i.get("deadline_id") or i.get("measure_id")) for i in page["items"]]


def test_cross_negotiation_deadlines_and_measures_read_their_writes(api):
    api.open("a")
    api.open("b")
    api.post("/v1/negotiations/a/events", {"events": [deadline("truce-expiry", "2031-08-12"), measure("us-ieepa-fentanyl-cn", 20)]})
    last = api.post("/v1/negotiations/b/events", {"events": [deadline("summit", "2031-10-30"), measure("eu-steel-cn", 25, imposed_by="EU")]})
    position = last.json()["position"]
    deadlines = api.get("/v1/deadlines", params={"min_position": position}).json()
    assert _ids(deadlines) == [("a", "truce-expiry"), ("b", "summit")]
    assert deadlines["items"][0]["days_remaining"] > 0 and deadlines["items"][0]["because"]
    later = api.get("/v1/deadlines", params={"due_after": "2031-09-01", "min_position": position}).json()
    assert _ids(later) == [("b", "summit")]
    in_force = api.get("/v1/measures", params={"in_force": "true", "min_position": position}).json()
    assert {(i["measure_id"], i["rate_pct"]) for i in in_force["items"]} == {("us-ieepa-fentanyl-cn", 20), ("eu-steel-cn", 25)}
    eu = api.get("/v1/measures", params={"imposed_by": "EU", "min_position": position}).json()
    assert _ids(eu) == [("b", "eu-steel-cn")]


def test_a_view_not_at_min_position_answers_503_and_a_position_past_the_head_422(database_url):
    settings = Settings(database_url=database_url, min_position_wait=0.2, run_projections=False)
    with TestClient(create_app(settings)) as client:
        key = client.app.state.key_store.create(name="reporter", role="reporter", created_by="test").key
        client.headers["Authorization"] = f"Bearer {key}"
        client.post("/v1/negotiations", json={"id": "a", "title": "A", "parties": ["US"]})
        position = client.post("/v1/negotiations/a/events", json=deadline()).json()["position"]

        behind = client.get("/v1/deadlines", params={"min_position": position})
        beyond = client.get("/v1/measures", params={"min_position": position + 1})

        assert behind.status_code == 503
        assert behind.headers["retry-after"] == "1"
        assert behind.json()["errors"][0]["field"] == "min_position"
        assert beyond.status_code == 422
        assert beyond.json()["errors"] == [{"field": "min_position", "message": f"is beyond the latest recorded position {position}"}]


def test_view_rows_equal_a_fold_of_all_events_at_the_same_position(api):
    api.open("a")
    for n in range(30):
        api.post("/v1/negotiations/a/events", deadline(f"d{n}", f"2031-01-{n % 28 + 1:02d}"))
        api.post("/v1/negotiations/a/events", measure(f"m{n % 5}", float(n)))
    log = api.client.app.state.log
    for embedded in api.client.app.state.runners.values():
        embedded.stop()  # this test rebuilds the views itself
    tables = open_view_tables(log)
    try:
        runner = ViewRunner(log, tables, MEASURES, batch_size=7)
        runner.rebuild()
        records = [a.record for a in log.stream("a", after_version=0, limit=1000)[0]]
        today = dt.datetime.now(dt.UTC).date()
        expected = MEASURES.rows(fold(records), today)
        stored = tables.rows(MEASURES, "negotiation_id = ?", ["a"])
        key = lambda r: (r["measure_id"], r["imposed_by"])  # noqa: E731
        assert sorted(stored, key=key) == sorted(expected, key=key)
        assert tables.position(MEASURES) == log.head()
        deadlines_runner = ViewRunner(log, tables, DEADLINES, batch_size=11)
        deadlines_runner.rebuild()
        assert len(tables.rows(DEADLINES)) == 30
    finally:
        tables.datastore.close()
