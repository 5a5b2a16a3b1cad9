"""The tamper table: someone with write access to the database (triggers dropped first) changes it; `verify` names what.

One fresh database per case, on SQLite and PostgreSQL. Each case is caught by `verify` against a
checkpoint taken before the change; those the log can show on its own are caught by `verify`
alone, and the two it cannot (a rewrite with every later hash recomputed, the newest events
deleted) are asserted to pass it, as docs/operations.md ("What verify proves") says.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from events.application import sqlite_file
from events.records import stream_id
from events.store import GENESIS, link
from tests.api.conftest import deadline

EVENTS = "<events table>"  # the stored events' table, named per store when a case is checked


@dataclass
class World:
    """What the cases tamper with: four deadlines of `talks`, one of `other`, and a retraction in `talks`."""

    talks: list[dict[str, Any]]
    other: dict[str, Any]
    retraction: dict[str, Any]


def _fill(api) -> World:
    api.open("talks")
    talks = api.post("/v1/negotiations/talks/events", {"events": [deadline(f"d{i}", due_on=f"2025-08-1{i}") for i in range(4)]}).json()["events"]
    api.open("other")
    other = api.post("/v1/negotiations/other/events", deadline("elsewhere")).json()["events"][0]
    retraction = {"type": "event_retracted", "occurred_on": "2025-05-13", "target": talks[1]["event_id"], "reason": "misreported"}
    return World(talks, other, api.post("/v1/negotiations/talks/events", retraction).json()["events"][0])


class Database:
    """Plain SQL on the test's database with Parley's triggers out of the way, as an intruder with the file would run it."""

    def __init__(self, api) -> None:
        self.store = api.client.app.state.log.store
        self.settings = api.client.app.state.settings
        self.table, self.position = self.store.events_table_name, self.store.position_column

    @contextmanager
    def unguarded(self) -> Iterator[Callable[..., list[dict[str, Any]]]]:
        guarded = (self.table, "parley_event_index")
        if self.settings.is_postgres:
            with psycopg.connect(self.settings.database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
                for table in guarded:
                    conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")

                def run(statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
                    cursor = conn.execute(statement.replace("?", "%s"), params)
                    return cursor.fetchall() if cursor.description else []

                yield run
                for table in guarded:
                    conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        else:
            # One connection of its own for the whole intrusion, as on PostgreSQL: DDL through the app's pool could
            # land on a connection that has not seen the DROP yet, and SQLite parses CREATE TRIGGER against that
            # connection's cached schema ("already exists").
            path = sqlite_file(self.settings.database_url)
            assert path is not None, self.settings.database_url
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.row_factory = sqlite3.Row
            try:
                def run(statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
                    return [dict(row) for row in conn.execute(statement, params).fetchall()]

                triggers = run("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                for trigger in triggers:
                    run(f"DROP TRIGGER {trigger['name']}")
                yield run
                for trigger in triggers:
                    run(trigger["sql"])
            finally:
                conn.close()

    def rewrite(self, run: Callable[..., Any], position: int, old: bytes, new: bytes) -> None:
        state = bytes(run(f"SELECT state FROM {self.table} WHERE {self.position} = ?", (position,))[0]["state"])
        assert old in state
        run(f"UPDATE {self.table} SET state = ? WHERE {self.position} = ?", (state.replace(old, new), position))

    def delete(self, run: Callable[..., Any], position: int) -> None:
        run(f"DELETE FROM {self.table} WHERE {self.position} = ?", (position,))
        run("DELETE FROM parley_event_index WHERE position = ?", (position,))

    def rechain(self, run: Callable[..., Any]) -> None:
        """Recompute every hash of the chain from the stored events, as someone covering their tracks would."""
        prev = GENESIS
        rows = run(f"SELECT {self.position} AS position, originator_id, originator_version, topic, state FROM {self.table} ORDER BY {self.position}")
        for row in rows:
            prev = link(prev, row["position"], uuid.UUID(str(row["originator_id"])), row["originator_version"], row["topic"], bytes(row["state"]))
            run("UPDATE parley_event_index SET hash = ? WHERE position = ?", (prev, row["position"]))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- the cases: (what is changed, caught by verify alone, the (table, column) a checkpointed verify names) ---


def payload_rewritten(db: Database, run, world: World) -> None:
    db.rewrite(run, world.talks[2]["position"], b'"deadline_id":"d2"', b'"deadline_id":"d9"')


def payload_rewritten_and_rechained(db: Database, run, world: World) -> None:
    payload_rewritten(db, run, world)
    db.rechain(run)


def hash_changed(db: Database, run, world: World) -> None:
    run("UPDATE parley_event_index SET hash = ? WHERE position = ?", ("a" * 64, world.talks[2]["position"]))


def last_event_deleted(db: Database, run, world: World) -> None:
    db.delete(run, world.retraction["position"])


def middle_event_deleted(db: Database, run, world: World) -> None:
    db.delete(run, world.talks[2]["position"])


def events_swapped(db: Database, run, world: World) -> None:
    first, last = world.talks[0]["position"], world.talks[3]["position"]
    states = {p: bytes(run(f"SELECT state FROM {db.table} WHERE {db.position} = ?", (p,))[0]["state"]) for p in (first, last)}
    run(f"UPDATE {db.table} SET state = ? WHERE {db.position} = ?", (states[last], first))
    run(f"UPDATE {db.table} SET state = ? WHERE {db.position} = ?", (states[first], last))


def recorded_at_backdated(db: Database, run, world: World) -> None:
    event = world.talks[2]
    db.rewrite(run, event["position"], f'"recorded_at":"{event["recorded_at"]}"'.encode(), b'"recorded_at":"2025-06-01T00:00:00Z"')
    run("UPDATE parley_event_index SET recorded_at = ? WHERE position = ?", ("2025-06-01T00:00:00Z", event["position"]))


def index_recorded_by_changed(db: Database, run, world: World) -> None:
    run("UPDATE parley_event_index SET recorded_by = 'reader-key' WHERE position = ?", (world.talks[2]["position"],))


def index_target_moved(db: Database, run, world: World) -> None:
    run("UPDATE parley_event_index SET target_id = ? WHERE position = ?", (world.other["event_id"], world.retraction["position"]))


def index_event_id_changed(db: Database, run, world: World) -> None:
    run("UPDATE parley_event_index SET event_id = ? WHERE position = ?", (str(uuid.uuid4()), world.talks[2]["position"]))


def index_negotiation_and_version_changed(db: Database, run, world: World) -> None:
    run("UPDATE parley_event_index SET negotiation_id = 'other', originator_id = ?, originator_version = 3 WHERE position = ?",
        (str(stream_id("other")), world.talks[2]["position"]))


def key_role_raised(db: Database, run, world: World) -> None:
    run("UPDATE parley_keys SET role = 'admin' WHERE name = 'reader-key'")


def key_row_added(db: Database, run, world: World) -> None:
    run("INSERT INTO parley_keys (id, name, role, key_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
        ("key_0000intruder", "intruder", "admin", _digest("pk_intruder"), "2026-01-01T00:00:00Z", "test"))


def key_revocation_cleared(db: Database, run, world: World) -> None:
    run("UPDATE parley_keys SET revoked_at = NULL, revoked_by = NULL WHERE name = 'revoked-key'")


def key_secret_replaced(db: Database, run, world: World) -> None:
    run("UPDATE parley_keys SET key_hash = ? WHERE name = 'admin-key'", (_digest("pk_intruder"),))


@dataclass(frozen=True)
class Case:
    tamper: Callable[..., None]
    alone: bool  # whether verify without a checkpoint can see it
    table: str  # what verify with the checkpoint names: the table, the column, the position
    column: str | None
    at: Callable[[World], int] | None = None


def _third(world: World) -> int:
    return world.talks[2]["position"]


CASES: dict[str, Case] = {
    "payload rewritten": Case(payload_rewritten, True, EVENTS, "state", _third),
    "payload rewritten, every later hash recomputed": Case(payload_rewritten_and_rechained, False, EVENTS, None, lambda w: w.retraction["position"]),
    "an event's hash changed": Case(hash_changed, True, "parley_event_index", "hash", _third),
    "the last event deleted": Case(last_event_deleted, False, EVENTS, None, lambda w: w.retraction["position"]),
    "a middle event deleted": Case(middle_event_deleted, True, EVENTS, None, lambda w: w.talks[3]["position"]),
    "two events swapped": Case(events_swapped, True, EVENTS, "state", lambda w: w.talks[3]["position"]),
    "recorded_at backdated": Case(recorded_at_backdated, True, EVENTS, "state", _third),
    "index recorded_by changed": Case(index_recorded_by_changed, True, "parley_event_index", "recorded_by", _third),
    "index target_id moved to another negotiation's event": Case(index_target_moved, True, "parley_event_index", "target_id", lambda w: w.retraction["position"]),
    "index event_id changed": Case(index_event_id_changed, True, "parley_event_index", "event_id", _third),
    "index negotiation and version changed": Case(index_negotiation_and_version_changed, True, "parley_event_index", "originator_version", _third),
    "keys: a reader's role raised to admin": Case(key_role_raised, True, "parley_keys", "role"),
    "keys: a row added with no key event": Case(key_row_added, True, "parley_keys", None),
    "keys: a revocation cleared": Case(key_revocation_cleared, True, "parley_keys", "revoked_at"),
    "keys: an admin key's secret replaced": Case(key_secret_replaced, True, "parley_keys", "key_hash"),
}


def _named(report: dict[str, Any], table: str, column: str | None, position: int | None = None) -> bool:
    return any((p["table"], p.get("column")) == (table, column) and position in (None, p.get("position")) for p in report["problems"])


@pytest.mark.parametrize("case", CASES)
def test_verify_names_each_tampering_with_a_checkpoint_and_alone_where_the_log_can_show_it(api, case):
    world = _fill(api)
    kept = api.get("/v1/audit/checkpoint").json()
    before = api.post("/v1/audit/verify", kept, role="reader").json()
    assert before["ok"] and before["problems"] == [] and before["checkpoint_position"] == kept["position"], before
    assert before["keys_checked"] == 4

    db, this = Database(api), CASES[case]
    with db.unguarded() as run:
        this.tamper(db, run, world)
    table, position = db.table if this.table == EVENTS else this.table, this.at(world) if this.at else None

    checked = api.post("/v1/audit/verify", kept, role="reader")
    assert checked.status_code == 200, checked.text
    assert checked.json()["ok"] is False and _named(checked.json(), table, this.column, position), checked.json()
    alone = api.get("/v1/audit/verify")
    assert alone.status_code == 200, alone.text
    if this.alone:
        assert alone.json()["ok"] is False and _named(alone.json(), table, this.column, position), alone.json()
    else:  # the log alone cannot tell: it is a consistent chain, only shorter or different from what was witnessed
        assert alone.json()["ok"] is True and alone.json()["problems"] == [], alone.json()


def test_a_problem_names_the_row_the_column_and_both_values(api):
    world = _fill(api)
    db = Database(api)
    with db.unguarded() as run:
        index_target_moved(db, run, world)
        key_role_raised(db, run, world)
    # what the tampering makes audit answers say, until verify is asked
    assert api.get(f"/v1/events/{world.other['event_id']}/history").json()["records"][-1]["event_id"] == world.retraction["event_id"]
    report = api.get("/v1/audit/verify").json()
    moved = next(p for p in report["problems"] if p.get("column") == "target_id")
    assert moved["position"] == world.retraction["position"] and moved["event_id"] == world.retraction["event_id"]
    assert (moved["expected"], moved["found"]) == (world.talks[1]["event_id"], world.other["event_id"])
    raised = next(p for p in report["problems"] if p["table"] == "parley_keys")
    assert (raised["column"], raised["expected"], raised["found"]) == ("role", "reader", "admin")
    assert raised["key_id"].startswith("key_") and raised["event_id"]
    assert report["problem_count"] == 2 and report["broken_at"] is None  # the chain itself holds


def test_an_edited_checkpoint_is_refused_and_a_malformed_one_is_a_422(api):
    _fill(api)
    kept = api.get("/v1/audit/checkpoint").json()
    edited = api.post("/v1/audit/verify", {**kept, "position": kept["position"] - 1}, role="reader").json()
    assert edited["ok"] is False and [(p["table"], p["column"]) for p in edited["problems"]] == [("checkpoint", "signature")]
    malformed = api.post("/v1/audit/verify", {**kept, "hash": "xyz"}, role="reader")
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "hash", malformed.text
    assert api.post("/v1/audit/verify", kept, role="reader").json()["ok"] is True


def test_the_cli_verify_names_the_same_problems_and_exits_1(api, tmp_path):
    world = _fill(api)
    kept = tmp_path / "checkpoint.json"
    kept.write_text(json.dumps(api.get("/v1/audit/checkpoint").json()))
    db = Database(api)
    with db.unguarded() as run:
        last_event_deleted(db, run, world)
        index_recorded_by_changed(db, run, world)
    env = {**os.environ, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}

    def parley(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "service", "audit", "verify", "--database", db.settings.database_url, *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    plain = parley()
    assert plain.returncode == 1 and "parley_event_index" in plain.stderr and "recorded_by" in plain.stderr, plain.stderr
    assert "Traceback" not in plain.stderr
    report = json.loads(parley("--checkpoint", str(kept), "--json").stdout)
    assert report["ok"] is False
    assert {(p["table"], p.get("column")) for p in report["problems"]} == {("parley_event_index", "recorded_by"), (db.table, None)}


def test_a_store_written_by_parley_0_1_verifies_though_its_keys_predate_fingerprints(tmp_path):
    store = tmp_path / "parley.db"
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "store-v0.1" / "parley.db", store)
    env = {**os.environ, "PARLEY_SIGNING_KEY_FILE": str(tmp_path / "signing.key")}
    out = subprocess.run([sys.executable, "-m", "service", "audit", "verify", "--json", "--database", str(store)],
                         capture_output=True, text=True, env=env, timeout=120)
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["ok"] and report["keys_checked"] == 1 and report["checked"] > 100, out.stdout + out.stderr


def test_a_checkpoint_of_a_log_whose_newest_event_is_gone_but_indexed_is_a_409_not_a_500(api):
    world = _fill(api)
    db = Database(api)
    with db.unguarded() as run:
        run(f"DELETE FROM {db.table} WHERE {db.position} = ?", (world.retraction["position"],))  # the index row stays
    response = api.get("/v1/audit/checkpoint")
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"position {world.retraction['position']}" in response.json()["detail"]
    assert api.get("/v1/audit/verify").json()["ok"] is False
