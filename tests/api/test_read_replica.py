"""Queries read a PostgreSQL read replica; `min_position` keeps read-your-writes by asking the primary.

The lagging replica is real: a physical copy of the primary's database taken with
`CREATE DATABASE ... TEMPLATE` after some writes, frozen at that point in time and made read-only,
so anything the app wrote through it would fail.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from service.app import create_app
from tests.support.process import free_port
from service.queries.store import ReplicaWriteError
from service.settings import Settings, SettingsError
from tests.api.conftest import deadline, measure
from tests.conftest import emptied_postgres

READ_FROM = "x-parley-read-from"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@dataclass
class Client:
    client: TestClient[Any]
    key: str

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.key}"})

    def post(self, path: str, body: Any) -> Any:
        response = self.client.post(path, json=body, headers={"Authorization": f"Bearer {self.key}"})
        assert response.status_code == 201, response.text
        return response


@pytest.fixture
def primary_url() -> str:
    return emptied_postgres()


@contextmanager
def _served(settings: Settings, key: str | None = None) -> Iterator[Client]:
    with TestClient(create_app(settings)) as client:
        if key is None:
            key = client.app.state.key_store.create(name="desk", role="admin", created_by="test").key
        yield Client(client, key)


def _freeze_copy(primary_url: str, replica: str) -> None:
    """A physical copy of the primary as it is now, read-only: a replica that stopped replaying."""
    admin = _with_database(primary_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{replica}" WITH (FORCE)')
        deadline_at = time.monotonic() + 60
        while True:  # the stopped app's threads may take a moment to let go of the template
            try:
                conn.execute(f'CREATE DATABASE "{replica}" TEMPLATE "{_database_of(primary_url)}"')
                break
            except psycopg.errors.ObjectInUse:
                if time.monotonic() > deadline_at:
                    sessions = conn.execute(
                        "SELECT application_name, state, query FROM pg_stat_activity WHERE datname = %s", (_database_of(primary_url),)
                    ).fetchall()
                    raise AssertionError(f"connections still open on the primary: {sessions}") from None
                time.sleep(0.2)
        conn.execute(f'ALTER DATABASE "{replica}" SET default_transaction_read_only = on')


def _drop(primary_url: str, replica: str) -> None:
    with psycopg.connect(_with_database(primary_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{replica}" WITH (FORCE)')


@dataclass
class Lagging:
    """The app on the primary with a replica frozen at `frozen_at`."""

    api: Client
    replica_url: str
    frozen_at: int

    def replica_count(self, statement: str) -> int:
        with psycopg.connect(self.replica_url) as conn:
            return int(conn.execute(statement).fetchone()[0])  # type: ignore[index]


@pytest.fixture
def lagging(primary_url: str, tmp_path: Path) -> Iterator[Lagging]:
    replica = f"{_database_of(primary_url)}_replica"
    replica_url = _with_database(primary_url, replica)
    settings = Settings(database_url=primary_url, signing_key_file=str(tmp_path / "signing.key"), min_position_wait=10, pool_size=2)
    with _served(settings) as api:
        api.post("/v1/negotiations", {"id": "talks", "title": "Talks", "parties": ["US", "CN"]})
        written = api.post("/v1/negotiations/talks/events", {"events": [deadline("truce-expiry", "2031-08-12"), measure("old-rate", 10)]})
        frozen_at = written.json()["position"]
        assert api.get("/v1/deadlines", min_position=frozen_at).status_code == 200  # the views have it before the copy
        key = api.key
    _freeze_copy(primary_url, replica)  # the app has stopped: no connection holds the primary
    try:
        with _served(msgspec.structs.replace(settings, read_database_url=replica_url), key) as api:
            yield Lagging(api, replica_url, frozen_at)
    finally:
        _drop(primary_url, replica)


def _deadline_ids(body: dict[str, Any]) -> set[str]:
    return {d["deadline_id"] for d in (*body["deadlines"]["upcoming"], *body["deadlines"]["passed"])}


def test_a_read_without_min_position_answers_from_the_replica_as_it_stood(lagging: Lagging) -> None:
    api = lagging.api
    written = api.post("/v1/negotiations/talks/events", deadline("summit", "2031-10-30"))
    assert READ_FROM not in written.headers  # writes answer from the primary, without a read side to report

    state = api.get("/v1/negotiations/talks/state")
    assert state.status_code == 200 and state.headers[READ_FROM] == "replica"
    assert _deadline_ids(state.json()) == {"truce-expiry"}
    assert state.json()["position"] == lagging.frozen_at

    events = api.get("/v1/negotiations/talks/events")
    assert events.headers[READ_FROM] == "replica"
    assert [e["type"] for e in events.json()["items"]] == ["negotiation_opened", "deadline_set", "measure_changed"]
    assert api.get("/v1/events").json()["items"][-1]["position"] == lagging.frozen_at
    assert api.get("/v1/negotiations/talks").json()["version"] == 3


def test_a_read_with_min_position_past_the_replica_answers_from_the_primary(lagging: Lagging) -> None:
    api = lagging.api
    position = api.post("/v1/negotiations/talks/events", deadline("summit", "2031-10-30")).json()["position"]

    state = api.get("/v1/negotiations/talks/state", min_position=position)
    assert state.status_code == 200 and state.headers[READ_FROM] == "primary"
    assert _deadline_ids(state.json()) == {"truce-expiry", "summit"}
    assert state.json()["position"] == position

    for path in ("/v1/negotiations/talks/events", "/v1/events", "/v1/negotiations/talks/timeline"):
        response = api.get(path, min_position=position)
        assert response.headers[READ_FROM] == "primary", path
        assert position in [e["position"] for e in response.json()["items"]], path
    negotiation = api.get("/v1/negotiations/talks", min_position=position)
    assert (negotiation.headers[READ_FROM], negotiation.json()["version"]) == ("primary", 4)
    exported = api.get("/v1/negotiations/talks/export", min_position=position)
    assert exported.headers[READ_FROM] == "primary" and b'"summit"' in exported.content


def test_a_position_the_replica_has_reached_is_read_from_the_replica(lagging: Lagging) -> None:
    api = lagging.api
    api.post("/v1/negotiations/talks/events", deadline("summit", "2031-10-30"))
    state = api.get("/v1/negotiations/talks/state", min_position=lagging.frozen_at)
    assert state.headers[READ_FROM] == "replica"
    assert _deadline_ids(state.json()) == {"truce-expiry"}


def test_view_reads_follow_the_same_rule(lagging: Lagging) -> None:
    api = lagging.api
    api.post("/v1/negotiations/talks/events", deadline("summit", "2031-10-30"))
    position = api.post("/v1/negotiations/talks/events", measure("new-rate", 25)).json()["position"]

    stale = api.get("/v1/deadlines")
    assert stale.headers[READ_FROM] == "replica"
    assert [d["deadline_id"] for d in stale.json()["items"]] == ["truce-expiry"]
    fresh = api.get("/v1/deadlines", min_position=position)
    assert fresh.headers[READ_FROM] == "primary"
    assert [d["deadline_id"] for d in fresh.json()["items"]] == ["truce-expiry", "summit"]

    assert {m["measure_id"] for m in api.get("/v1/measures").json()["items"]} == {"old-rate"}
    measures = api.get("/v1/measures", min_position=position)
    assert measures.headers[READ_FROM] == "primary"
    assert {m["measure_id"] for m in measures.json()["items"]} == {"old-rate", "new-rate"}
    assert api.get("/v1/measures", min_position=lagging.frozen_at).headers[READ_FROM] == "replica"


def test_what_the_replica_has_not_got_yet_is_asked_of_the_primary_before_a_404(lagging: Lagging) -> None:
    api = lagging.api
    opened = api.post("/v1/negotiations", {"id": "truce", "title": "Truce", "parties": ["US", "CN"]})
    event_id = api.post("/v1/negotiations/truce/events", deadline()).json()["events"][0]["event_id"]
    api.post("/v1/sources", {"id": "ustr", "name": "USTR", "kind": "official"})

    negotiation = api.get(opened.headers["location"])
    assert (negotiation.status_code, negotiation.headers[READ_FROM]) == (200, "primary")
    event = api.get(f"/v1/events/{event_id}")
    assert (event.status_code, event.headers[READ_FROM]) == (200, "primary")
    assert api.get("/v1/negotiations/truce/state").status_code == 200
    assert api.get("/v1/sources/ustr").status_code == 200
    unknown = api.get("/v1/negotiations/never-opened")
    assert (unknown.status_code, unknown.headers[READ_FROM]) == (404, "primary")


def test_writes_keys_and_audit_stay_on_the_primary(lagging: Lagging) -> None:
    api = lagging.api
    before = lagging.replica_count("SELECT COUNT(*) FROM parley_events")
    api.post("/v1/negotiations/talks/events", deadline("summit", "2031-10-30"))
    api.post("/v1/sources", {"id": "ustr", "name": "USTR", "kind": "official"})
    reader = api.client.post("/v1/keys", json={"name": "reader", "role": "reader"}, headers={"Authorization": f"Bearer {api.key}"}).json()
    # A key created after the copy works, and a revocation takes effect at once, though the replica never saw either.
    assert api.client.get("/v1/events", headers={"Authorization": f"Bearer {reader['key']}"}).status_code == 200
    assert api.client.delete(f"/v1/keys/{reader['id']}", headers={"Authorization": f"Bearer {api.key}"}).status_code == 200
    assert api.client.get("/v1/events", headers={"Authorization": f"Bearer {reader['key']}"}).status_code == 401

    with psycopg.connect(lagging.replica_url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO parley_sources (id, name, kind, created_at, created_by) VALUES ('x', 'x', 'x', 'x', 'x')")

    verified = api.get("/v1/audit/verify").json()
    assert verified["ok"] and verified["head_position"] > lagging.frozen_at
    assert lagging.replica_count("SELECT COUNT(*) FROM parley_events") == before
    assert lagging.replica_count("SELECT COUNT(*) FROM parley_sources") == 0


def test_a_min_position_no_write_was_answered_is_refused_against_the_primary(lagging: Lagging) -> None:
    response = lagging.api.get("/v1/negotiations/talks/events", min_position=10**9)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "min_position"


def test_an_unreachable_replica_fails_its_reads_with_503_and_leaves_writes_alone(primary_url: str, tmp_path: Path) -> None:
    parts = urlsplit(primary_url)
    closed = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{free_port()}"))  # nobody listens there
    settings = Settings(database_url=primary_url, read_database_url=closed, signing_key_file=str(tmp_path / "k"), pool_size=2)
    with _served(settings) as api:
        position = api.post("/v1/negotiations", {"id": "talks", "title": "Talks", "parties": ["US", "CN"]}).json()["position"]
        state = api.get("/v1/negotiations/talks/state")
        assert (state.status_code, state.headers[READ_FROM], state.headers["retry-after"]) == (503, "replica", "2")
        assert api.get("/v1/negotiations/talks/state", min_position=position).status_code == 503  # the replica's head is unknown
        assert api.get("/v1/audit/verify").json()["ok"]


def test_the_primary_as_its_own_replica_serves_a_normal_flow(primary_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=primary_url, read_database_url=primary_url, signing_key_file=str(tmp_path / "k"), pool_size=2)
    with _served(settings) as api:
        api.post("/v1/negotiations", {"id": "talks", "title": "Talks", "parties": ["US", "CN"]})
        position = api.post("/v1/negotiations/talks/events", {"events": [deadline(), measure()]}).json()["position"]
        # the persisted views are followed in the background: until they hold the append, their reads are the
        # primary's by design (the replica's copy is behind), so wait for them rather than race them
        assert all(runner.wait(position, 10) for runner in api.client.app.state.runners.values())
        reads = {
            "/v1/negotiations/talks/state": lambda b: b["tariffs"]["directions"][0]["total_additional_pct"] == 10,
            "/v1/negotiations/talks/state/deadlines": lambda b: b["deadlines"]["passed"][0]["deadline_id"] == "truce-expiry",
            "/v1/negotiations/talks/timeline": lambda b: len(b["items"]) == 3,
            "/v1/negotiations/talks/statements": lambda b: b["items"] == [],
            "/v1/negotiations/talks/claims": lambda b: b["items"] == [],
            "/v1/negotiations/talks/events": lambda b: len(b["items"]) == 3,
            "/v1/events": lambda b: b["items"][-1]["position"] == position,
            "/v1/deadlines": lambda b: [d["deadline_id"] for d in b["items"]] == ["truce-expiry"],
            "/v1/measures": lambda b: [m["measure_id"] for m in b["items"]] == ["us-ieepa-fentanyl-cn"],
        }
        for path, holds in reads.items():
            response = api.get(path, min_position=position)
            assert response.status_code == 200, (path, response.text)
            assert response.headers[READ_FROM] == "replica", path
            assert holds(response.json()), (path, response.json())
        diff = api.get("/v1/negotiations/talks/diff", **{"from": "2025-01-01", "to": "2025-03-01", "min_position": position})
        assert diff.status_code == 200 and diff.json()["changes"]
        assert api.get("/v1/negotiations/talks/export", format="ics", min_position=position).status_code == 200
        assert api.get("/v1/audit/verify").json()["ok"]
        replica = api.client.app.state.reads.replica()
        with pytest.raises(ReplicaWriteError):
            replica.log.record("talks", [], principal="test", request_id="test")
        with pytest.raises(ReplicaWriteError):
            replica.log.run("DELETE FROM parley_sources", commit=True)


def test_a_read_replica_beside_an_sqlite_store_is_refused_at_start(tmp_path: Path) -> None:
    settings = Settings(database_url=str(tmp_path / "parley.db"), read_database_url="postgresql://db-replica/parley")
    with pytest.raises(SettingsError, match="PARLEY_READ_DATABASE_URL needs a PostgreSQL PARLEY_DATABASE_URL"):
        create_app(settings)
    served = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env={"PARLEY_DATABASE_URL": str(tmp_path / "parley.db"), "PARLEY_READ_DATABASE_URL": "postgresql://db-replica/parley",
             "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert served.returncode == 2
    assert "PARLEY_READ_DATABASE_URL needs a PostgreSQL" in served.stderr
    assert not (tmp_path / "parley.db").exists()


def test_a_read_database_url_must_itself_be_postgresql() -> None:
    settings = Settings(database_url="postgresql://db/parley", read_database_url="var/replica.db")
    with pytest.raises(SettingsError, match="must be a postgresql:// URL"):
        settings.check_read_database()
