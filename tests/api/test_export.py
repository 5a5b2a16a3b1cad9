"""Exports through HTTP and the CLI, on SQLite and PostgreSQL: a JSON Lines round trip, TimelineJS, iCalendar, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
import typer
from litestar.testing import TestClient
from typer.testing import CliRunner

from events.datasets import load
from service.app import create_app
from service.cli.export import register
from service.queries.exports import CSV_COLUMNS, client_body, deadline_uid
from service.settings import Settings
from tests.api.conftest import Api
from tests.unit.test_exports import assert_timelinejs_shape

DATASET = "us-china-trade-2025"
SOURCE = "source-talks"
COPY = "copied-talks"
BATCH = 1000
# What POST /v1/negotiations takes of a negotiation_opened line.
OPENING_FIELDS = ("title", "parties", "description", "occurred_on", "source", "topics")
COMPARED = ("truce", "tariffs", "measures", "deadlines", "issues", "rounds")


def import_lines(api: Any, negotiation_id: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open the negotiation from the first line, then append the others in batches; the stored events."""
    opening, *events = bodies
    assert opening["type"] == "negotiation_opened"
    created = api.post("/v1/negotiations", {"id": negotiation_id, **{k: opening[k] for k in OPENING_FIELDS if k in opening}})
    assert created.status_code == 201, created.text
    stored: list[dict[str, Any]] = []
    for start in range(0, len(events), BATCH):
        response = api.post(f"/v1/negotiations/{negotiation_id}/events", {"events": events[start : start + BATCH]})
        assert response.status_code == 201, response.text
        stored += response.json()["events"]
    return stored


def load_dataset(api: Any, negotiation_id: str = SOURCE) -> list[dict[str, Any]]:
    return import_lines(api, negotiation_id, [client_body(e) for e in load(DATASET)])


def amend(api: Any, stored: list[dict[str, Any]], negotiation_id: str = SOURCE) -> None:
    """Correct the semiconductor tariff to 45% and retract the tungsten tariff and the first statement."""
    semiconductors = next(e for e in stored if e.get("measure_id") == "us-301-semiconductors-cn")
    tungsten = next(e for e in stored if e.get("measure_id") == "us-301-tungsten-cn")
    statement = next(e for e in stored if e["type"] == "statement_made")
    replacement = {k: v for k, v in semiconductors.items() if k in client_body_fields(semiconductors)}
    replacement["rate_pct"] = 45
    amendments = [
        {"type": "event_corrected", "occurred_on": "2025-01-02", "target": semiconductors["event_id"],
         "replacement": replacement, "reason": "rate misread"},
        {"type": "event_retracted", "occurred_on": "2025-01-02", "target": tungsten["event_id"], "reason": "duplicate"},
        {"type": "event_retracted", "occurred_on": "2025-01-02", "target": statement["event_id"], "reason": "misquoted"},
    ]
    response = api.post(f"/v1/negotiations/{negotiation_id}/events", {"events": amendments})
    assert response.status_code == 201, response.text


def client_body_fields(stored: dict[str, Any]) -> set[str]:
    return set(stored) - {"event_id", "negotiation_id", "version", "position", "recorded_at", "recorded_by",
                          "request_id", "hash", "corrected_by", "retracted_by"}


def exported(api: Any, negotiation_id: str = SOURCE, **params: str) -> Any:
    response = api.get(f"/v1/negotiations/{negotiation_id}/export", params=params)
    assert response.status_code == 200, response.text
    return response


def jsonl_bodies(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def stripped(value: Any) -> Any:
    """A state without what names events: `because` and the event ids differ between two imports."""
    if isinstance(value, dict):
        return {k: stripped(v) for k, v in value.items() if k not in ("because", "event_id")}
    if isinstance(value, list):
        return [stripped(v) for v in value]
    return value


def state_on(api: Any, negotiation_id: str, day: str) -> dict[str, Any]:
    response = api.get(f"/v1/negotiations/{negotiation_id}/state", params={"as_of": day})
    assert response.status_code == 200, response.text
    said = api.get(f"/v1/negotiations/{negotiation_id}/statements", params={"as_of": day, "limit": 1000})
    assert said.status_code == 200 and said.json()["next"] is None, said.text
    body = response.json()
    return stripped({**{part: body[part] for part in COMPARED}, "statements": said.json()["items"]})


# --- JSON Lines ------------------------------------------------------------------------------


def test_jsonl_export_reimports_to_an_identical_state_on_every_event_date(api, monkeypatch):
    monkeypatch.setattr("service.queries.exports.PAGE", 7)  # read and send across many pages
    amend(api, load_dataset(api))
    response = exported(api, format="jsonl")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == f'attachment; filename="{SOURCE}.jsonl"'
    bodies = jsonl_bodies(response)
    assert len(bodies) == len(load(DATASET)) - 2  # two events retracted; amendments applied, not exported
    assert not {"event_corrected", "event_retracted"} & {b["type"] for b in bodies}

    import_lines(api, COPY, bodies)

    days = sorted({e.occurred_on.isoformat() for e in load(DATASET)})
    for day in days:
        assert state_on(api, COPY, day) == state_on(api, SOURCE, day), f"states differ on {day}"
    last = state_on(api, SOURCE, days[-1])
    rates = {m["measure_id"]: m["rate_pct"] for d in last["tariffs"]["directions"] for m in d["measures"]}
    assert rates["us-301-semiconductors-cn"] == 45 and "us-301-tungsten-cn" not in rates
    assert last["truce"]["status"] == "active" and last["deadlines"]["upcoming"]


def test_jsonl_export_of_the_copy_equals_the_export_of_the_source(api):
    amend(api, load_dataset(api))
    first = exported(api, format="jsonl").text
    import_lines(api, COPY, [json.loads(line) for line in first.splitlines()])
    assert exported(api, COPY, format="jsonl").text == first


def test_jsonl_full_history_keeps_corrections_with_the_source_ids(api):
    stored = load_dataset(api)
    amend(api, stored)
    bodies = jsonl_bodies(exported(api, format="jsonl", history="full"))
    assert len(bodies) == len(load(DATASET)) + 3
    targets = {b["target"] for b in bodies if b["type"] in ("event_corrected", "event_retracted")}
    assert targets <= {e["event_id"] for e in stored} and len(targets) == 3
    assert not any("event_id" in b for b in bodies)


def test_jsonl_export_at_known_at_leaves_out_later_corrections(api, clock, monkeypatch):
    monkeypatch.setattr("service.queries.exports.PAGE", 7)
    load_dataset(api)
    before = clock.now.isoformat().replace("+00:00", "Z")
    clock.advance(hours=1)
    amend(api, api.get(f"/v1/negotiations/{SOURCE}/events", params={"limit": 1000}).json()["items"])
    bodies = jsonl_bodies(exported(api, format="jsonl", known_at=before))
    assert len(bodies) == len(load(DATASET))
    semiconductors = next(b for b in bodies if b.get("measure_id") == "us-301-semiconductors-cn")
    assert semiconductors["rate_pct"] == 50


# --- TimelineJS, iCalendar, CSV --------------------------------------------------------------


def test_timelinejs_export_has_the_documented_shape(api):
    load_dataset(api)
    response = exported(api, format="timelinejs")
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert_timelinejs_shape(document)
    assert {"Measures: US→CN", "Measures: CN→US"} <= {s["group"] for s in document["events"]}
    assert [(e["start_date"], e["end_date"]) for e in document["eras"]] == [
        ({"year": 2025, "month": 5, "day": 14}, {"year": 2027, "month": 1, "day": 9})  # the last day before 12:01 a.m. 10 Jan 2027
    ]


def calendar_events(text: bytes) -> dict[str, Any]:
    calendar = icalendar.Calendar.from_ical(text)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


def test_deadlines_ics_is_a_calendar_of_the_extended_due_dates(api):
    load_dataset(api)
    response = api.get(f"/v1/negotiations/{SOURCE}/deadlines.ics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    events = calendar_events(response.content)
    truce = events[deadline_uid(SOURCE, "truce-expiry")]
    # extended to 12:01 a.m. on 10 Jan 2027, so its last day is 9 Jan
    assert truce.decoded("DTSTART") == dt.date(2027, 1, 9) and truce["SEQUENCE"] == 3
    assert {uid.split(".", 1)[1].removesuffix("@parley") for uid in events} == {
        "truce-expiry", "tiktok-enforcement-delay", "cn-export-controls-suspension-ends", "cn-us-dual-use-ban-suspension-ends",
        "us-maritime-301-suspension-ends", "us-affiliates-rule-suspension-ends", "cn-port-fee-suspension-ends",
        "us-301-semiconductor-step-up", "us-section-122-limit"}
    same = exported(api, format="ics")
    assert same.headers["content-disposition"] == f'attachment; filename="{SOURCE}-deadlines.ics"'
    assert calendar_events(same.content).keys() == events.keys()


def test_a_subscribed_calendar_sees_the_deadline_move(api):
    load_dataset(api)
    uid = deadline_uid(SOURCE, "truce-expiry")
    before = calendar_events(api.get(f"/v1/negotiations/{SOURCE}/deadlines.ics").content)[uid]
    moved = {"type": "deadline_extended", "occurred_on": "2026-10-01", "deadline_id": "truce-expiry", "due_on": "2027-03-01"}
    assert api.post(f"/v1/negotiations/{SOURCE}/events", moved).status_code == 201
    after = calendar_events(api.get(f"/v1/negotiations/{SOURCE}/deadlines.ics").content)[uid]
    assert before.decoded("DTSTART") == dt.date(2027, 1, 9) and before["SEQUENCE"] == 3
    # the extension keeps how the date ends (12:01 a.m.), so the last day is 28 February
    assert after.decoded("DTSTART") == dt.date(2027, 2, 28) and after["SEQUENCE"] == 4


def test_csv_export_has_one_row_per_tariff_change(api):
    amend(api, load_dataset(api))
    response = exported(api, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    tariffs = [e for e in load(DATASET) if e.type == "measure_changed" and e.kind == "tariff"]  # type: ignore[attr-defined]
    assert len(rows) == len(tariffs) - 1  # the tungsten tariff was retracted
    semiconductors = next(r for r in rows if r["measure_id"] == "us-301-semiconductors-cn")
    assert semiconductors["rate_pct"] == "45" and semiconductors["negotiation_id"] == SOURCE


# --- errors ----------------------------------------------------------------------------------


def test_an_unknown_format_is_400_naming_format(api):
    load_dataset(api)
    for params, field in (({"format": "pdf"}, "format"), ({"format": ""}, "format"),
                          ({"history": "some"}, "history"), ({"known_at": "yesterday"}, "known_at")):
        response = api.get(f"/v1/negotiations/{SOURCE}/export", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == [field]


def test_exports_of_an_unknown_negotiation_are_404(api):
    for path in ("/v1/negotiations/nowhere/export", "/v1/negotiations/nowhere/export?format=csv",
                 "/v1/negotiations/nowhere/deadlines.ics"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["title"] == "Negotiation not found"


def test_exports_need_a_key(api):
    load_dataset(api)
    assert api.client.get(f"/v1/negotiations/{SOURCE}/export").status_code == 401
    assert api.client.get(f"/v1/negotiations/{SOURCE}/deadlines.ics").status_code == 401


def test_a_calendar_subscription_may_carry_its_key_in_the_url(api):
    load_dataset(api)
    feed = f"/v1/negotiations/{SOURCE}/deadlines.ics"
    subscribed = api.client.get(feed, params={"key": api.keys["reader"]})
    assert subscribed.status_code == 200 and subscribed.text.startswith("BEGIN:VCALENDAR")
    assert api.client.get(feed, params={"key": api.keys["revoked"]}).status_code == 401
    # only the calendar feed takes a key in the URL
    assert api.client.get(f"/v1/negotiations/{SOURCE}/export", params={"key": api.keys["reader"]}).status_code == 401


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def quiet_api(database_url: str, clock: Any) -> Iterator[Api]:
    """The API without projection runners, whose log lines would land in the CLI's captured stdout."""
    with TestClient(create_app(Settings(database_url=database_url, run_projections=False), clock=clock)) as client:
        key = client.app.state.key_store.create(name="reporter-key", role="reporter", created_by="test").key
        yield Api(client, {"reporter": key, "reader": key})


def cli_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def parley() -> None:
        """Parley."""

    register(app)
    return app


def test_cli_export_writes_what_the_api_exports(quiet_api, database_url, tmp_path: Path):
    api = quiet_api
    amend(api, load_dataset(api))
    runner = CliRunner()
    to_stdout = runner.invoke(cli_app(), ["export", "--negotiation", SOURCE, "--database", database_url])
    assert to_stdout.exit_code == 0, to_stdout.output
    assert to_stdout.stdout == exported(api, format="jsonl").text
    target = tmp_path / "tariffs.csv"
    to_file = runner.invoke(
        cli_app(), ["export", "-n", SOURCE, "--format", "csv", "--output", str(target), "--database", database_url]
    )
    assert to_file.exit_code == 0, to_file.output
    assert target.read_bytes() == exported(api, format="csv").content
    assert not (tmp_path / "tariffs.csv.part").exists()


def test_cli_export_errors_are_one_line_and_an_exit_code(quiet_api, database_url, tmp_path: Path):
    api = quiet_api
    load_dataset(api)
    runner = CliRunner()
    cases = [
        (["--negotiation", "nowhere"], 1, "no negotiation 'nowhere'"),
        (["--negotiation", SOURCE, "--format", "pdf"], 2, "--format: must be one of jsonl, timelinejs, ics, csv"),
        (["--negotiation", SOURCE, "--output", str(tmp_path / "missing" / "x.ics"), "--format", "ics"], 1, "cannot write"),
    ]
    for args, code, message in cases:
        result = runner.invoke(cli_app(), ["export", *args, "--database", database_url])
        assert result.exit_code == code, (args, result.output)
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
