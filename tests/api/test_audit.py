"""Audit and tamper evidence: history, who recorded what, the hash chain, signed checkpoints, triggers."""

from __future__ import annotations

import msgspec
import psycopg
import pytest

from events.audit import Checkpoint
from service.signing import signature_valid
from tests.api.conftest import deadline, measure


def _sql(api, statement: str, params=()):  # runs on the app's own store connection
    return api.client.app.state.log.store.run(statement, params, commit=True)


def _is_postgres(api) -> bool:
    return api.client.app.state.settings.is_postgres


def _events_table(api) -> str:
    return api.client.app.state.log.store.events_table_name


def _position_column(api) -> str:
    return api.client.app.state.log.store.position_column


def _without_triggers(api, statement: str, params=()):
    table = _events_table(api)
    if _is_postgres(api):
        with psycopg.connect(api.client.app.state.settings.database_url, autocommit=True) as conn:
            for t in (table, "parley_event_index"):
                conn.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
            conn.execute(statement.replace("?", "%s"), params)
            for t in (table, "parley_event_index"):
                conn.execute(f"ALTER TABLE {t} ENABLE TRIGGER USER")
    else:
        triggers = [r["name"] for r in _sql(api, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")]
        saved = {r["name"]: r["sql"] for r in _sql(api, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
        for name in triggers:
            _sql(api, f"DROP TRIGGER {name}")
        _sql(api, statement, params)
        for name in triggers:
            _sql(api, saved[name])


def _fill(api, count: int = 6) -> list[dict]:
    api.open()
    return api.post("/v1/negotiations/talks/events", {"events": [deadline(f"d{i}") for i in range(count)]}).json()["events"]


def test_the_chain_verifies_and_names_the_position_of_a_changed_byte(api):
    events = _fill(api)
    ok = api.get("/v1/audit/verify").json()
    stored = len(api.get("/v1/events", params={"limit": 1000}).json()["items"])  # the negotiation's 7 and the key audit events
    assert ok["ok"] is True and ok["checked"] == stored and ok["head_position"] == events[-1]["position"]
    assert ok["head_hash"] == events[-1]["hash"]
    target = events[2]["position"]
    table, column = _events_table(api), _position_column(api)
    if _is_postgres(api):
        statement = f"UPDATE {table} SET state = overlay(state placing '9'::bytea from 60 for 1) WHERE {column} = ?"
    else:
        statement = f"UPDATE {table} SET state = CAST(substr(state, 1, 59) || '9' || substr(state, 61) AS BLOB) WHERE {column} = ?"
    _without_triggers(api, statement, (target,))
    broken = api.get("/v1/audit/verify").json()
    assert broken["ok"] is False and broken["broken_at"] == target


def test_a_deleted_event_is_named_as_a_gap(api):
    events = _fill(api)
    gone = events[3]["position"]
    _without_triggers(api, f"DELETE FROM {_events_table(api)} WHERE {_position_column(api)} = ?", (gone,))
    _without_triggers(api, "DELETE FROM parley_event_index WHERE position = ?", (gone,))
    broken = api.get("/v1/audit/verify").json()
    assert broken["ok"] is False
    assert (broken["previous_position"], broken["broken_at"]) == (events[2]["position"], events[4]["position"])


@pytest.mark.parametrize("statement", ["UPDATE {table} SET topic = 'x'", "DELETE FROM {table}", "UPDATE parley_event_index SET hash = 'x'", "DELETE FROM parley_event_index"])
def test_update_and_delete_on_the_event_tables_fail(api, statement):
    _fill(api, 1)
    with pytest.raises(Exception, match="immutable"):
        _sql(api, statement.format(table=_events_table(api)))
    assert api.get("/v1/audit/verify").json()["ok"] is True


def test_a_checkpoint_verifies_with_the_published_key_and_fails_after_any_change(api):
    _fill(api)
    checkpoint = msgspec.convert(api.get("/v1/audit/checkpoint").json(), Checkpoint)
    key = api.client.get("/v1/audit/public-key").json()
    assert key["algorithm"] == "Ed25519" and key["key_id"] == checkpoint.key_id
    assert signature_valid(checkpoint, key["public_key"])
    for change in ({"position": checkpoint.position - 1}, {"hash": "0" * 64}, {"recorded_at": "2020-01-01T00:00:00Z"}):
        assert not signature_valid(msgspec.structs.replace(checkpoint, **change), key["public_key"])


def test_history_shows_the_original_every_correction_and_the_retraction_in_order(api, clock):
    api.open()
    original = api.post("/v1/negotiations/talks/events", measure(rate=10)).json()["events"][0]
    ids = [original["event_id"]]
    for rate in (15, 20):
        clock.advance(hours=1)
        body = {"type": "event_corrected", "occurred_on": "2025-02-02", "target": original["event_id"],
                "replacement": measure(rate=rate), "reason": f"rate was {rate}"}
        ids.append(api.post("/v1/negotiations/talks/events", body, role="admin").json()["events"][0]["event_id"])
    clock.advance(hours=1)
    retraction = {"type": "event_retracted", "occurred_on": "2025-02-03", "target": original["event_id"], "reason": "wrong country"}
    ids.append(api.post("/v1/negotiations/talks/events", retraction).json()["events"][0]["event_id"])
    history = api.get(f"/v1/events/{original['event_id']}/history").json()
    records = history["records"]
    assert [r["event_id"] for r in records] == ids
    assert [r["recorded_by"] for r in records] == ["reporter-key", "admin-key", "admin-key", "reporter-key"]
    assert [r.get("reason") for r in records] == [None, "rate was 15", "rate was 20", "wrong country"]
    assert records == sorted(records, key=lambda r: r["recorded_at"])
    # as known at each record's moment, the rate is what the record then said; after the retraction, none
    rates = []
    for record in records:
        tariffs = api.get("/v1/negotiations/talks/state/tariffs",
                          params={"as_of": "2025-03-01", "known_at": record["recorded_at"]}).json()["tariffs"]
        rates.append([m["rate_pct"] for d in tariffs["directions"] for m in d["measures"]])
    assert rates == [[10], [15], [20], []]
    assert api.get("/v1/events/00000000-0000-4000-8000-000000000000/history").status_code == 404


def test_audit_events_filter_by_who_when_and_source(api, clock):
    api.open()
    clock.advance(days=1)
    api.post("/v1/negotiations/talks/events", deadline("a"), role="admin")
    api.post("/v1/negotiations/talks/events", measure())
    by_admin = api.get("/v1/audit/events", params={"recorded_by": "admin-key"}).json()["items"]
    assert [e["deadline_id"] for e in by_admin] == ["a"]
    by_source = api.get("/v1/audit/events", params={"source": "the white house"}).json()["items"]
    assert [e["type"] for e in by_source] == ["measure_changed"]
    since = api.get("/v1/audit/events", params={"recorded_from": clock.now.isoformat()}).json()["items"]
    assert len(since) == 2
    assert api.get("/v1/audit/events", params={"recorded_from": "2025-01-01T00:00:00"}).status_code == 400


def test_key_creation_and_revocation_are_audit_events(api):
    created = api.post("/v1/keys", {"name": "reuters-desk", "role": "reporter"}, role="admin").json()
    api.client.delete(f"/v1/keys/{created['id']}", headers=api.headers("admin"))
    trail = api.get("/v1/audit/events", params={"negotiation": "_audit"}).json()["items"]
    mine = [(e["type"], e["recorded_by"]) for e in trail if e.get("name") == "reuters-desk"]
    assert mine == [("key_created", "admin-key"), ("key_revoked", "admin-key")]
    assert all("key" not in e or not str(e["key"]).startswith("pk_") for e in trail)  # never a secret
    assert api.get("/v1/negotiations/_audit").status_code == 404  # the audit stream is not a negotiation


def test_a_principal_shows_what_it_recorded_and_its_key_history(api):
    api.open()
    api.post("/v1/negotiations/talks/events", {"events": [deadline("a"), deadline("b")]})
    audit = api.get("/v1/audit/principals/reporter-key").json()
    assert audit["key"]["role"] == "reporter" and audit["key"]["created_by"] == "test"
    assert audit["events_recorded"] == 3
    assert [(n["negotiation_id"], n["events"]) for n in audit["negotiations"]] == [("talks", 3)]
    assert [e["type"] for e in audit["key_events"]] == ["key_created"]
    revoked = api.get("/v1/audit/principals/revoked-key").json()
    assert [e["type"] for e in revoked["key_events"]] == ["key_created", "key_revoked"]
    assert api.get("/v1/audit/principals/nobody").status_code == 404
