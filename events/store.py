"""The eventsourcing recorders Parley uses, extended with an event index, a hash chain and idempotency rows.

The library's recorders store the events and assign positions. Parley adds, in the same
transaction as each insert: one index row per event (event_id, correction target, chain
hash) and the idempotency record of the request that appended them. Everything else it
keeps (access keys) lives in small side tables of the same database.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from eventsourcing.persistence import Notification, StoredEvent, Subscription
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL

from events.records import index_fields

GENESIS = "0" * 64


class StoredRow(msgspec.Struct, frozen=True):
    position: int
    originator_id: uuid.UUID
    version: int
    topic: str
    state: bytes
    hash: str


class Idempotency(msgspec.Struct, frozen=True):
    """The record of a request that appended events, so a retry returns the same answer."""

    principal: str
    key: str
    request_hash: str
    negotiation_id: str
    event_ids: list[str]
    created_at: str


@functools.lru_cache(maxsize=4096)
def _canonical(originator_id: uuid.UUID | str) -> str:
    # a log has few streams: each stored form of a stream id is parsed once, not once per event
    return str(uuid.UUID(str(originator_id)))


def link(prev: str, position: int, originator_id: uuid.UUID | str, version: int, topic: str, state: bytes) -> str:
    """One link of the tamper-evidence chain: SHA-256(prev_hash || canonical bytes of the event)."""
    digest = hashlib.sha256(bytes.fromhex(prev))
    digest.update(f"{position}|{_canonical(originator_id)}|{version}|{topic}|".encode())
    digest.update(state)
    return digest.hexdigest()


_TABLES = [
    """CREATE TABLE IF NOT EXISTS parley_event_index (
        position BIGINT PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        originator_id TEXT NOT NULL,
        originator_version BIGINT NOT NULL,
        topic TEXT NOT NULL,
        target_id TEXT,
        negotiation_id TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS parley_event_index_target ON parley_event_index (target_id)",
    "CREATE INDEX IF NOT EXISTS parley_event_index_recorded_by ON parley_event_index (recorded_by, position)",
    """CREATE TABLE IF NOT EXISTS parley_idempotency (
        principal TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        negotiation_id TEXT NOT NULL,
        event_ids TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (principal, key))""",
    """CREATE TABLE IF NOT EXISTS parley_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT)""",
    """CREATE TABLE IF NOT EXISTS parley_sources (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT,
        reliability TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL)""",
]

def immutability_triggers(events_table: str, dialect: str) -> list[str]:
    """UPDATE and DELETE on the event tables fail, for every database user but the owner who drops them."""
    tables = (events_table, "parley_event_index")
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS parley_immutable_{table}_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'Parley events are immutable: {op} on {table} refused'); END"
            for table in tables
            for op in ("UPDATE", "DELETE")
        ]
    statements = [
        "CREATE OR REPLACE FUNCTION parley_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $body$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'Parley events are immutable: ' || TG_OP || ' on ' "
        "|| TG_TABLE_NAME || ' refused', ERRCODE = 'insufficient_privilege'; END; $body$"
    ]
    for table in tables:
        statements += [
            f"CREATE OR REPLACE TRIGGER parley_immutable_rows BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION parley_refuse_change()",
            f"CREATE OR REPLACE TRIGGER parley_immutable_table BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION parley_refuse_change()",
        ]
    return statements


_INSERT_INDEX = (
    "INSERT INTO parley_event_index "
    "(position, event_id, originator_id, originator_version, topic, target_id, negotiation_id, recorded_by, recorded_at, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_IDEMPOTENCY = (
    "INSERT INTO parley_idempotency (principal, key, request_hash, negotiation_id, event_ids, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_LAST_HASH = "SELECT hash FROM parley_event_index ORDER BY position DESC LIMIT 1"
INDEXED_COLUMNS = ("event_id", "negotiation_id", "originator_id", "originator_version", "topic", "target_id", "recorded_by", "recorded_at")


def _index_rows(prev: str | None, stored_events: Sequence[StoredEvent], positions: Sequence[int]) -> list[tuple[Any, ...]]:
    rows = []
    for stored, position in zip(stored_events, positions, strict=True):
        fields = index_fields(stored.state)
        if prev is not None:
            prev = link(prev, position, stored.originator_id, stored.originator_version, stored.topic, stored.state)
        rows.append(
            (position, fields.event_id, str(stored.originator_id), stored.originator_version, stored.topic, fields.target,
             fields.negotiation_id, fields.recorded_by, fields.recorded_at, prev or "")
        )
    return rows


def _idempotency_row(record: Idempotency) -> tuple[Any, ...]:
    return (
        record.principal,
        record.key,
        record.request_hash,
        record.negotiation_id,
        msgspec.json.encode(record.event_ids).decode(),
        record.created_at,
    )


class SideTables:
    """Plain SQL on a recorder's own datastore; queries use `?`, turned into `%s` for PostgreSQL."""

    placeholder = "?"

    def _sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _transaction(self, commit: bool) -> Any:
        return self.datastore.transaction(commit=commit)  # type: ignore[attr-defined]

    def run(self, statement: str, params: Sequence[Any] = (), *, commit: bool = False) -> list[dict[str, Any]]:
        with self._transaction(commit) as cursor:
            cursor.execute(self._sql(statement), tuple(params))
            # the SQLite wrapper has no description; its fetchall() after a write is simply empty
            has_rows = getattr(cursor, "description", True)
            return [dict(row) for row in cursor.fetchall()] if has_rows else []

    def _create_table(self, cursor: Any) -> None:
        # Processes starting together (replicas, workers, `parley migrate`) deadlock replacing the same
        # triggers, or race creating the same table; a transaction-scoped lock lets them take turns.
        if self.placeholder != "?":
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('parley schema'))")
        super()._create_table(cursor)  # type: ignore[misc]


class ParleyTables(SideTables):
    """Reads over the event log and Parley's side tables, shared by both recorders."""

    position_column = "rowid"
    hash_chain = True  # only benchmarks turn it off, to price it

    def _write_side_rows(self, cursor: Any, stored_events: Sequence[StoredEvent], positions: Sequence[int], kwargs: dict[str, Any]) -> None:
        """In the insert's own transaction: index rows with their chain links, and idempotency rows."""
        prev = None
        if self.hash_chain:
            cursor.execute(self._sql(_LAST_HASH))
            last = cursor.fetchone()
            prev = last["hash"] if last else GENESIS
        rows = _index_rows(prev, stored_events, positions)
        cursor.executemany(self._sql(_INSERT_INDEX), rows)
        # Replaced, not extended: an insert tried again must not hand back the failed attempt's links.
        kwargs.get("hashes", [])[:] = [row[-1] for row in rows]
        idempotency = [_idempotency_row(r) for r in kwargs.get("idempotency", ())]
        if idempotency:
            cursor.executemany(self._sql(_INSERT_IDEMPOTENCY), idempotency)
        for statement, params in kwargs.get("side_statements", ()):  # a side table changed with the event that records it
            cursor.execute(self._sql(statement), tuple(params))

    def _oid(self, originator_id: uuid.UUID) -> Any:
        return originator_id

    def _rows(self, statement: str, params: Sequence[Any]) -> list[StoredRow]:
        return [
            StoredRow(
                position=row["position"],
                originator_id=uuid.UUID(str(row["originator_id"])),
                version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
                hash=row["hash"],
            )
            for row in self.run(statement, params)
        ]

    def _select(self) -> str:
        events: str = self.events_table_name  # type: ignore[attr-defined]
        return (
            f"SELECT e.{self.position_column} AS position, e.originator_id, e.originator_version, "
            f"e.topic, e.state, i.hash FROM {events} e "
            f"JOIN parley_event_index i ON i.position = e.{self.position_column} "
        )

    def select_stream(self, originator_id: uuid.UUID, *, after_version: int, limit: int) -> list[StoredRow]:
        return self._rows(
            self._select() + "WHERE e.originator_id = ? AND e.originator_version > ? "
            "ORDER BY e.originator_version LIMIT ?",
            (self._oid(originator_id), after_version, limit),
        )

    def select_feed(self, *, after: int, limit: int, topics: Sequence[str] = ()) -> list[StoredRow]:
        where = f"WHERE e.{self.position_column} > ? "
        params: list[Any] = [after]
        if topics:
            where += f"AND e.topic IN ({', '.join('?' * len(topics))}) "
            params.extend(topics)
        return self._rows(self._select() + where + f"ORDER BY e.{self.position_column} LIMIT ?", (*params, limit))

    def select_events_by_id(self, event_ids: Sequence[str]) -> list[StoredRow]:
        if not event_ids:
            return []
        marks = ", ".join("?" * len(event_ids))
        return self._rows(
            self._select() + f"WHERE i.event_id IN ({marks}) ORDER BY i.position", tuple(event_ids)
        )

    def corrections_of(self, event_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not event_ids:
            return []
        marks = ", ".join("?" * len(event_ids))
        return self.run(
            "SELECT event_id, target_id, topic FROM parley_event_index "
            f"WHERE target_id IN ({marks}) ORDER BY position",
            tuple(event_ids),
        )

    def idempotency(self, principal: str, key: str) -> Idempotency | None:
        rows = self.run(
            "SELECT principal, key, request_hash, negotiation_id, event_ids, created_at "
            "FROM parley_idempotency WHERE principal = ? AND key = ?",
            (principal, key),
        )
        if not rows:
            return None
        row = rows[0]
        return Idempotency(**{**row, "event_ids": msgspec.json.decode(row["event_ids"])})

    def select_chain(self, *, after: int, limit: int) -> list[dict[str, Any]]:
        """Stored events in position order with their index row: the chain hash and the `index_*` columns (None where the row is missing)."""
        events: str = self.events_table_name  # type: ignore[attr-defined]
        p = self.position_column
        indexed = ", ".join(f"i.{column} AS index_{column}" for column in INDEXED_COLUMNS)
        return self.run(
            f"SELECT e.{p} AS position, e.originator_id, e.originator_version, e.topic, e.state, i.hash, {indexed} "
            f"FROM {events} e LEFT JOIN parley_event_index i ON i.position = e.{p} "
            f"WHERE e.{p} > ? ORDER BY e.{p} LIMIT ?",
            (after, limit),
        )

    def select_orphan_index_rows(self, *, limit: int) -> list[dict[str, Any]]:
        """Index rows with no stored event at their position."""
        events: str = self.events_table_name  # type: ignore[attr-defined]
        return self.run(
            f"SELECT i.position, i.event_id FROM parley_event_index i WHERE NOT EXISTS "
            f"(SELECT 1 FROM {events} e WHERE e.{self.position_column} = i.position) ORDER BY i.position LIMIT ?",
            (limit,),
        )

    def seen_keys(self, principal: str, keys: Sequence[str]) -> set[str]:
        """Which of these idempotency keys of `principal` were used already."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.run(
                f"SELECT key FROM parley_idempotency WHERE principal = ? AND key IN ({', '.join('?' * len(chunk))})",
                (principal, *chunk),
            )
            found.update(row["key"] for row in rows)
        return found

    def head(self) -> int:
        rows = self.run("SELECT MAX(position) AS head FROM parley_event_index")
        return int(rows[0]["head"] or 0)


class Commits:
    """A counter of commits in this process that followers can wait on."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def bump(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout)
            return self.count


class PollingSubscription(Subscription[Any]):
    """SQLite cannot notify: follow the log by polling it from the last position seen."""

    def __init__(
        self, recorder: Any, gt: int | None = None, topics: Sequence[str] = (), interval: float = 0.1, *, local_wakeups: bool = True,
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._buffer: list[Notification] = []
        self._interval = interval
        # the recorder counts commits made in this process, so local followers need not wait a full interval;
        # a follower that hears this process's commits otherwise (`local_wakeups=False`) polls for the others only
        self._commits: Commits = recorder.commits if local_wakeups else Commits()
        self._seen = self._commits.count

    def stop(self) -> None:
        super().stop()
        self._commits.bump()

    def __next__(self) -> Notification:
        while not self._buffer:
            if self._has_been_stopped:
                raise StopIteration
            self._buffer = list(
                self._recorder.select_notifications(
                    start=self._last_notification_id or 0, limit=500, topics=self._topics, inclusive_of_start=False
                )
            )[::-1]
            if not self._buffer:
                self._seen = self._commits.wait_past(self._seen, self._interval)
        notification = self._buffer.pop()
        self._last_notification_id = notification.id
        return notification


class ParleySQLiteRecorder(ParleyTables, SQLiteApplicationRecorder):
    placeholder = "?"
    position_column = "rowid"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            *_TABLES,
            *immutability_triggers(self.events_table_name, "sqlite"),
        ]

    def _oid(self, originator_id: uuid.UUID) -> Any:
        return originator_id.hex

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs) or []
        self._write_side_rows(c, stored_events, positions, kwargs)
        return positions

    @property
    def commits(self) -> Commits:
        if not hasattr(self, "_commits"):
            self._commits = Commits()
        return self._commits

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super().insert_events(stored_events, **kwargs)
        self.commits.bump()
        return positions

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = (), *, local_wakeups: bool = True) -> PollingSubscription:
        return PollingSubscription(self, gt=gt, topics=topics, local_wakeups=local_wakeups)



class ParleyPostgresRecorder(ParleyTables, PostgresApplicationRecorder):
    placeholder = "%s"
    position_column = "notification_id"

    # The library tries these up to ten times, each waiting for a connection as long as the pool
    # allows: a request would hang for a minute while the server is down. One attempt, then 503;
    # the client retries (with its Idempotency-Key, an ambiguous commit answers the first result).
    insert_events = PostgresApplicationRecorder.insert_events.__wrapped__  # type: ignore[attr-defined]
    select_events = PostgresApplicationRecorder.select_events.__wrapped__  # type: ignore[attr-defined]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        statements = [*_TABLES, *immutability_triggers(self.events_table_name, "postgres")]
        self.sql_create_statements.extend(SQL(statement) for statement in statements)  # type: ignore[arg-type]

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs) or []
        # The library holds the table lock here, so the previous hash is the true predecessor.
        self._write_side_rows(curs, stored_events, positions, kwargs)
        return positions
