"""Poison events: a view or the webhook relay parks an event it cannot process and goes on past it.

The poison is real: an event stored by a newer Parley whose type this version cannot decode, or a
view whose row code fails on one event. Once the cause is fixed (a mapper that knows the newer type,
the view's code mended), `retry` processes the parked event and the rows are those of a full fold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from events.application import ParleyLog, store_env
from events.payloads import DeadlineExtended, DeadlineSet, NegotiationOpened, Source
from events.records import ParleyMapper, Recorded, stream_id
from service.followers.parking import parked_events
from service.followers.views import ViewRunner, ViewTables, open_view_tables
from projections.state import State, fold
from service.followers.tables import DEADLINES, Row, ViewSpec
from service.cli import cli
from service.webhooks.store import RELAY, open_webhook_tables

TODAY = dt.date(2025, 6, 1)
SOURCE = Source(name="White House")


def opened(negotiation_id: str) -> NegotiationOpened:
    return NegotiationOpened(occurred_on=dt.date(2025, 5, 1), title=negotiation_id.title(), parties=["US", "CN"], source=SOURCE)  # type: ignore[arg-type]


def deadline_set(deadline_id: str, due_on: dt.date, title: str = "Truce expiry") -> DeadlineSet:
    return DeadlineSet(occurred_on=dt.date(2025, 5, 12), deadline_id=deadline_id, title=title, due_on=due_on, source=SOURCE)  # type: ignore[arg-type]


def from_a_newer_version(log: ParleyLog, negotiation_id: str, deadline_id: str, due_on: str) -> int:
    """Store, as a newer Parley would, a `deadline_rescheduled` event this version has no payload for."""
    version = log.negotiation(negotiation_id).version + 1
    state = {
        "event_id": str(uuid.uuid4()), "negotiation_id": negotiation_id, "recorded_at": "2025-06-01T00:00:00Z",
        "recorded_by": "newer-parley", "request_id": "r-newer",
        "event": {"type": "deadline_rescheduled", "occurred_on": "2025-05-30", "deadline_id": deadline_id,
                  "new_due_on": due_on, "source": {"name": "White House"}},
    }
    stored = StoredEvent(originator_id=stream_id(negotiation_id), originator_version=version, topic="deadline_rescheduled",
                         state=json.dumps(state).encode())
    position, = log.recorder.insert_events([stored])
    log._states.pop(negotiation_id, None)  # the writer's cache has not seen what another version wrote
    return position


class UpgradedMapper(ParleyMapper):
    """The fix shipped later: this version learns to read `deadline_rescheduled` as a deadline extension."""

    def to_domain_event(self, stored_event: StoredEvent) -> Recorded:
        if stored_event.topic != "deadline_rescheduled":
            return super().to_domain_event(stored_event)
        state = json.loads(stored_event.state)
        newer = state.pop("event")
        event = DeadlineExtended(occurred_on=dt.date.fromisoformat(newer["occurred_on"]), deadline_id=newer["deadline_id"],  # type: ignore[arg-type]
                                 due_on=dt.date.fromisoformat(newer["new_due_on"]), source=SOURCE)  # type: ignore[arg-type]
        return Recorded(originator_id=stream_id(state["negotiation_id"]), originator_version=stored_event.originator_version,
                        event=event, recorded_at=dt.datetime.fromisoformat(state.pop("recorded_at")), **state)


@pytest.fixture
def log(database_url: str) -> Iterator[ParleyLog]:
    opened_log = ParleyLog(store_env(database_url))
    yield opened_log
    opened_log.close()


@pytest.fixture
def tables(log: ParleyLog) -> Iterator[ViewTables]:
    opened_tables = open_view_tables(log)
    yield opened_tables
    opened_tables.datastore.close()  # type: ignore[attr-defined]


def append(log: ParleyLog, negotiation_id: str, *events: Any) -> int:
    return log.record(negotiation_id, list(events), principal="editor", request_id="r")[-1].position


def rows_of_a_fold(log: ParleyLog, negotiation_id: str, spec: ViewSpec, *, without: set[str] = frozenset()) -> list[Row]:  # type: ignore[assignment]
    records = [a.record for a in log.stream(negotiation_id, after_version=0, limit=1000)[0] if a.record.event_id not in without]
    return spec.rows(fold(records), TODAY)


def view_rows(tables: ViewTables, spec: ViewSpec, negotiation_id: str) -> list[Row]:
    return tables.rows(spec, "negotiation_id = ?", (negotiation_id,), order=", ".join(spec.key))


def _sorted(rows: list[Row], spec: ViewSpec) -> list[Row]:
    return sorted(rows, key=lambda row: tuple(str(row[k]) for k in spec.key))


# --- a view whose row code fails on one event --------------------------------------------------


@dataclasses.dataclass
class Mendable:
    """The deadlines view with a bug: its rows fail for a deadline titled 'Poison' until it is mended."""

    mended: bool = False

    def rows(self, state: State, today: dt.date) -> list[Row]:
        rows = DEADLINES.rows(state, today)
        if not self.mended and any(row["title"] == "Poison" for row in rows):
            raise ValueError("cannot lay out a deadline titled 'Poison'")
        return rows


def test_a_view_parks_the_event_its_rows_fail_on_and_keeps_the_rest_consistent(log: ParleyLog, tables: ViewTables) -> None:
    bug = Mendable()
    spec = dataclasses.replace(DEADLINES, rows=bug.rows)
    append(log, "a", opened("a"), deadline_set("truce-expiry", dt.date(2025, 8, 12)))
    poison_at = append(log, "a", deadline_set("summit", dt.date(2025, 9, 1), title="Poison"))
    append(log, "a", DeadlineExtended(occurred_on=dt.date(2025, 5, 20), deadline_id="truce-expiry", due_on=dt.date(2025, 11, 10), source=SOURCE))  # type: ignore[arg-type]
    head = append(log, "b", opened("b"), deadline_set("vote", dt.date(2025, 7, 1)))
    runner = ViewRunner(log, tables, spec, today=lambda: TODAY, batch_size=3)

    runner.catch_up()

    assert tables.position(spec) == head  # went on past the poison event
    parked, = parked_events(tables, spec.name)
    poison_id = log.feed(after=poison_at - 1, limit=1)[0][0].record.event_id
    assert (parked.position, parked.event_id, parked.negotiation_id, parked.attempts) == (poison_at, poison_id, "a", 1)
    assert "cannot lay out a deadline titled 'Poison'" in parked.error
    # Negotiation a's rows are those of its events without the poison one: the later extension is in them.
    assert _sorted(view_rows(tables, spec, "a"), spec) == _sorted(rows_of_a_fold(log, "a", DEADLINES, without={poison_id}), spec)
    assert view_rows(tables, spec, "a")[-1]["due_on"] == "2025-11-10"
    assert _sorted(view_rows(tables, spec, "b"), spec) == _sorted(rows_of_a_fold(log, "b", DEADLINES), spec)

    # A later event of the same negotiation folds onto the state without the parked event, also after a restart.
    append(log, "a", deadline_set("ceasefire", dt.date(2025, 12, 1)))
    ViewRunner(log, tables, spec, today=lambda: TODAY).catch_up()
    assert _sorted(view_rows(tables, spec, "a"), spec) == _sorted(rows_of_a_fold(log, "a", DEADLINES, without={poison_id}), spec)

    failing, = runner.retry_parked()  # not mended yet: still parked, tried once more
    assert (failing.position, failing.attempts) == (poison_at, 2) and "Poison" in failing.error
    assert [(p.position, p.attempts) for p in parked_events(tables, spec.name)] == [(poison_at, 2)]

    bug.mended = True
    assert runner.retry_parked([poison_at]) == []
    assert parked_events(tables, spec.name) == []
    assert _sorted(view_rows(tables, spec, "a"), spec) == _sorted(rows_of_a_fold(log, "a", DEADLINES), spec)


def test_store_errors_fail_the_batch_and_park_nothing(log: ParleyLog, tables: ViewTables) -> None:
    def unreadable(state: State, today: dt.date) -> list[Row]:
        raise OSError("the disk holding a lookup file went away")

    spec = dataclasses.replace(DEADLINES, rows=unreadable)
    append(log, "a", opened("a"), deadline_set("truce-expiry", dt.date(2025, 8, 12)))
    runner = ViewRunner(log, tables, spec, today=lambda: TODAY)
    with pytest.raises(OSError):
        runner.catch_up()
    assert tables.position(spec) == 0 and parked_events(tables) == []


# --- an event this version cannot decode ----------------------------------------------------


def test_an_event_from_a_newer_version_is_parked_by_views_and_relay_and_retried_once_understood(
    database_url: str, log: ParleyLog, tables: ViewTables,
) -> None:
    append(log, "talks", opened("talks"), deadline_set("truce-expiry", dt.date(2025, 8, 12)))
    newer_at = from_a_newer_version(log, "talks", "truce-expiry", "2025-11-10")
    head = append(log, "other", opened("other"), deadline_set("summit", dt.date(2025, 9, 1)))
    runner = ViewRunner(log, tables, DEADLINES, today=lambda: TODAY)
    runner.catch_up()
    hooks = open_webhook_tables(log)
    try:
        relay = _relay(log, hooks)
        relay.catch_up()
        assert (tables.position(DEADLINES), hooks.position()) == (head, head)
        assert [(p.follower, p.position) for p in parked_events(tables)] == [("deadlines", newer_at), (RELAY, newer_at)]
        assert "deadline_rescheduled" in parked_events(tables)[0].error
        rows = {row["deadline_id"]: row for row in view_rows(tables, DEADLINES, "talks")}
        assert rows["truce-expiry"]["due_on"] == "2025-08-12"  # as if the newer event were not there
        assert [row["deadline_id"] for row in view_rows(tables, DEADLINES, "other")] == ["summit"]

        cli_runner = CliRunner()
        listed = cli_runner.invoke(cli, ["projections", "parked", "--json", "--database", database_url])
        assert listed.exit_code == 0, listed.output
        assert [(p["follower"], p["position"], p["negotiation_id"]) for p in json.loads(listed.stdout)] == [
            ("deadlines", newer_at, "talks"), (RELAY, newer_at, "talks")]
        status = cli_runner.invoke(cli, ["projections", "status", "--json", "--database", database_url])
        assert {row["view"]: row["parked"] for row in json.loads(status.stdout)} == {"deadlines": 1, "measures": 0, RELAY: 1}
        not_yet = cli_runner.invoke(cli, ["projections", "retry", "--view", "deadlines", str(newer_at), "--database", database_url])
        assert not_yet.exit_code == 1 and "still parked" in not_yet.output
        assert next(p for p in parked_events(tables) if p.follower == "deadlines").attempts == 2

        upgraded = ParleyLog({**store_env(database_url), "MAPPER_TOPIC": f"{__name__}:UpgradedMapper"})
        try:
            assert ViewRunner(upgraded, tables, DEADLINES, today=lambda: TODAY).retry_parked() == []
            assert _relay(upgraded, hooks).retry_parked([newer_at]) == []
        finally:
            upgraded.close()
        assert parked_events(tables) == []
        rows = {row["deadline_id"]: row for row in view_rows(tables, DEADLINES, "talks")}
        assert (rows["truce-expiry"]["due_on"], rows["truce-expiry"]["extensions"]) == ("2025-11-10", 1)
    finally:
        hooks.datastore.close()  # type: ignore[attr-defined]


def _relay(log: ParleyLog, hooks: Any) -> Any:
    from service.webhooks.delivery import Relay
    from service.webhooks.subscriptions import SecretBox, Subscriptions

    return Relay(log, hooks, Subscriptions(hooks, SecretBox(b"k" * 32)))


def test_reads_and_appends_on_a_negotiation_holding_a_newer_event_answer_503_naming_it(api):
    api.open("talks")
    api.open("other")
    assert api.post("/v1/negotiations/talks/events", {"events": [
        {"type": "deadline_set", "occurred_on": "2025-05-12", "deadline_id": "truce", "title": "Truce expiry", "due_on": "2025-08-12"},
    ]}).status_code == 201
    from_a_newer_version(api.client.app.state.log, "talks", "truce", "2025-11-10")
    paths = ["/v1/negotiations/talks", "/v1/negotiations/talks/state", "/v1/negotiations/talks/state?as_of=2025-06-01",
             "/v1/negotiations/talks/events", "/v1/negotiations/talks/timeline", "/v1/negotiations/talks/diff?from=2025-05-01&to=2025-06-01",
             "/v1/negotiations/talks/export?format=jsonl", "/v1/events"]
    answers = {path: api.get(path) for path in paths}
    answers["append"] = api.post("/v1/negotiations/talks/events", {"events": [
        {"type": "deadline_set", "occurred_on": "2025-05-13", "deadline_id": "other", "title": "Other", "due_on": "2025-09-01"},
    ]})
    assert {name: r.status_code for name, r in answers.items() if r.status_code != 503} == {}
    for response in answers.values():
        problem = response.json()
        assert problem["title"] == "Event from a newer version"
        assert "deadline_rescheduled" in problem["detail"] and "talks" in problem["detail"]
        assert response.headers["Retry-After"]
    assert api.get("/v1/negotiations/other/state").status_code == 200  # the other negotiations answer as before


@pytest.mark.parametrize("broken", [{"occurred_on": "1700-01-01"}, {"summary": "nul \u0000 inside"}], ids=["date out of range", "NUL"])
def test_a_stored_event_that_breaks_a_write_time_rule_is_refused_on_every_read_as_before(api, broken):
    """Reads take events from the live state (decoded once) instead of re-reading them: the one decode still checks."""
    api.open("talks")
    log = api.client.app.state.log
    state = {
        "event_id": str(uuid.uuid4()), "negotiation_id": "talks", "recorded_at": "2025-06-01T00:00:00Z",
        "recorded_by": "an-older-tool", "request_id": "r-old",
        "event": {"type": "deadline_set", "occurred_on": "2025-05-12", "deadline_id": "truce", "title": "Truce expiry",
                  "due_on": "2025-08-12", **broken},
    }
    log.recorder.insert_events([StoredEvent(originator_id=stream_id("talks"), originator_version=2, topic="deadline_set",
                                            state=json.dumps(state).encode())])
    log._states.pop("talks", None)
    for path in ("/v1/negotiations/talks/events", "/v1/negotiations/talks/events?after_version=1", "/v1/negotiations/talks/timeline",
                 "/v1/negotiations/talks/state", "/v1/negotiations/talks/events?limit=1"):
        response = api.get(path)
        assert response.status_code == 503, (path, response.text)
        assert "talks" in response.json()["detail"]
