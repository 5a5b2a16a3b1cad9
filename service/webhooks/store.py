"""Webhook tables: subscriptions, the outbox (one row per message and subscription) and delivery attempts.

The outbox is written by the relay together with its tracking position (eventsourcing's tracking
table), so a replay of the log never enqueues a message twice; senders claim due rows with a lease.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from events.application import ParleyLog, is_postgres_env
from events.store import SideTables
from service.followers.parking import PARKED_TABLE, Parked, write_parked

_TABLES = [
    """CREATE TABLE IF NOT EXISTS parley_webhooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        event_types TEXT NOT NULL,
        negotiations TEXT NOT NULL,
        description TEXT,
        status TEXT NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_until TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        last_success_at TEXT,
        failing_since TEXT,
        disabled_reason TEXT,
        listener INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS parley_outbox (
        message_id TEXT NOT NULL,
        subscription_id TEXT NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        position BIGINT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at TEXT NOT NULL,
        lease_until TEXT,
        last_status INTEGER,
        claimed_by TEXT,
        PRIMARY KEY (message_id, subscription_id))""",
    "CREATE INDEX IF NOT EXISTS parley_outbox_due ON parley_outbox (status, next_attempt_at)",
    """CREATE TABLE IF NOT EXISTS parley_delivery_attempts (
        message_id TEXT NOT NULL,
        subscription_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        attempted_at TEXT NOT NULL,
        status_code INTEGER,
        latency_ms DOUBLE PRECISION NOT NULL,
        response_head TEXT,
        error TEXT,
        PRIMARY KEY (message_id, subscription_id, attempt))""",
]

RELAY = "webhook-relay"
SENDER = "webhook-sender"  # each sender's sign of life is the lease `webhook-sender-<its id>`


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class Enqueued(msgspec.Struct, frozen=True):
    message_id: str
    subscription_id: str
    type: str
    body: bytes
    position: int


class WebhookTables(SideTables):
    has_column = ""  # a query with one row when the table named by its first parameter has the column named by its second

    def _create_table(self, cursor: Any) -> None:
        super()._create_table(cursor)
        # Tables from earlier releases gain the columns added since: an outbox whose old claims run out as before,
        # subscriptions that are none of them a local listener.
        for table, column, definition in (("parley_outbox", "claimed_by", "TEXT"),
                                          ("parley_webhooks", "listener", "INTEGER NOT NULL DEFAULT 0")):
            cursor.execute(self._sql(self.has_column), (table, column))
            if not cursor.fetchall():
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def enqueue(
        self, rows: Sequence[tuple[Enqueued, str]], now: dt.datetime, tracking: Tracking | None,
        parked: Sequence[Parked] = (), resolved: Iterable[int] = (),
    ) -> int:
        """Insert outbox rows with their status (a row already there is left alone), park poison events, unpark
        retried ones and advance the relay, at once."""
        insert = self._sql(
            "INSERT INTO parley_outbox (message_id, subscription_id, type, body, position, created_at, status, attempts, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) "
            "ON CONFLICT (message_id, subscription_id) DO NOTHING"
        )
        stamp = iso(now)
        with self._transaction(True) as cursor:
            if rows:
                cursor.executemany(
                    insert,
                    [(r.message_id, r.subscription_id, r.type, r.body.decode(), r.position, stamp, status, stamp) for r, status in rows],
                )
            write_parked(self, cursor, parked, [(RELAY, position) for position in resolved])
            if tracking is not None:
                self._insert_tracking(cursor, tracking)  # type: ignore[attr-defined]
        return len(rows)

    def requeue(self, row: Enqueued, now: dt.datetime) -> None:
        """Queue a message again for a subscription (replay, recovery): same id, same bytes, attempts from zero."""
        stamp = iso(now)
        self.run(
            "INSERT INTO parley_outbox (message_id, subscription_id, type, body, position, created_at, status, attempts, "
            "next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?) "
            "ON CONFLICT (message_id, subscription_id) DO UPDATE SET status = 'pending', attempts = 0, "
            "next_attempt_at = excluded.next_attempt_at, lease_until = NULL, claimed_by = NULL",
            (row.message_id, row.subscription_id, row.type, row.body.decode(), row.position, stamp, stamp),
            commit=True,
        )

    def claimers(self, excluding: str) -> set[str]:
        """The ids of the other senders that hold rows now."""
        rows = self.run(
            "SELECT DISTINCT claimed_by FROM parley_outbox WHERE status = 'delivering' AND claimed_by <> ?", (excluding,)
        )
        return {row["claimed_by"] for row in rows}

    def claim(
        self, now: dt.datetime, lease: dt.timedelta, limit: int, claimer: str, gone: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """Take due rows for sender `claimer` until the lease ends, and the rows of senders that are `gone`; others skip them."""
        locking = " FOR UPDATE SKIP LOCKED" if self.placeholder != "?" else ""
        orphaned = f" OR (status = 'delivering' AND claimed_by IN ({', '.join('?' for _ in gone)}))" if gone else ""
        statement = self._sql(
            "UPDATE parley_outbox SET lease_until = ?, status = 'delivering', claimed_by = ? "
            "WHERE (message_id, subscription_id) IN ("
            "  SELECT message_id, subscription_id FROM parley_outbox "
            f"  WHERE (status = 'pending' AND next_attempt_at <= ?) OR (status = 'delivering' AND lease_until < ?){orphaned} "
            f"  ORDER BY next_attempt_at LIMIT ?{locking}) "
            "RETURNING message_id, subscription_id, type, body, position, attempts"
        )
        stamp = iso(now)
        with self._transaction(True) as cursor:
            cursor.execute(statement, (iso(now + lease), claimer, stamp, stamp, *gone, limit))
            return [dict(row) for row in cursor.fetchall()]

    def renew(self, claimer: str, held_until: dt.datetime, until: dt.datetime) -> set[tuple[str, str]]:
        """Extend a sender's lease on the rows it still holds (those still under the lease it set); returns their keys."""
        statement = self._sql(
            "UPDATE parley_outbox SET lease_until = ? WHERE status = 'delivering' AND claimed_by = ? AND lease_until = ? "
            "RETURNING message_id, subscription_id"
        )
        with self._transaction(True) as cursor:
            cursor.execute(statement, (iso(until), claimer, iso(held_until)))
            return {(row["message_id"], row["subscription_id"]) for row in cursor.fetchall()}

    def give_back(self, claimer: str) -> None:
        """Return a sender's claimed rows that it has not started to the queue, due as they were."""
        self.run(
            "UPDATE parley_outbox SET status = 'pending', lease_until = NULL, claimed_by = NULL "
            "WHERE status = 'delivering' AND claimed_by = ?",
            (claimer,),
            commit=True,
        )

    def position(self) -> int:
        return self.max_tracking_id(RELAY) or 0  # type: ignore[attr-defined]


class SQLiteWebhookTables(WebhookTables, SQLiteTrackingRecorder):
    has_column = "SELECT 1 FROM pragma_table_info(?) WHERE name = ?"

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_TABLES, PARKED_TABLE]


class PostgresWebhookTables(WebhookTables, PostgresTrackingRecorder):
    placeholder = "%s"
    has_column = "SELECT 1 FROM pg_attribute WHERE attrelid = ?::regclass AND attname = ? AND NOT attisdropped"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from psycopg.sql import SQL

        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in (*_TABLES, PARKED_TABLE))  # type: ignore[arg-type]


def open_webhook_tables(log: ParleyLog) -> WebhookTables:
    env = Environment("ParleyWebhooks", dict(log.env))
    factory = InfrastructureFactory.construct(env)
    postgres = is_postgres_env(env)
    return factory.tracking_recorder(PostgresWebhookTables if postgres else SQLiteWebhookTables)  # type: ignore[return-value]
