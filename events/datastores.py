"""The eventsourcing datastores, made to recover by themselves after a store fault.

SQLite opens a file read-only, without a word, when it may not write it, and keeps that
connection for good: after a statement fails for a reason other than a constraint (read-only,
disk full, I/O error), connections opened before the failure are closed when next taken, and
until a write commits again each connection serves one statement, so the next statements open
the file as it is now and the first write after the fault clears succeeds.

psycopg's pool reconnects with a backoff that doubles (1, 2, 4, 8 s, ...): after a restart the
service could stay down for as long again as the server was. Parley's pool gives up a reconnection
after a few seconds instead, and the next statement that needs a connection tries at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteConnection, SQLiteDatastore, SQLiteFactory

RECONNECT_GIVE_UP_SECONDS = 2.0


class RenewingSQLiteDatastore(SQLiteDatastore):
    """Connections opened before a store fault, or while it lasts, are closed instead of reused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults = 0
        self._failing = False  # from a fault until a write commits again

    @contextmanager
    def get_connection(self, *, commit: bool) -> Iterator[SQLiteConnection]:
        if self.pool.is_sqlite_memory_mode:  # an in-memory database lives only in its connections
            with super().get_connection(commit=commit) as conn:
                yield conn
            return
        conn = self._fresh_connection(commit)
        try:
            yield conn
        except IntegrityError:
            raise
        except (PersistenceError, sqlite3.Error):
            self._faults += 1
            self._failing = True
            raise
        else:
            if commit:
                self._failing = False
        finally:
            if self._failing:
                conn.close()
            self.pool.put_connection(conn)

    def _fresh_connection(self, commit: bool) -> SQLiteConnection:
        while True:
            conn = self.pool.get_connection(is_writer=commit)
            if not hasattr(conn, "parley_faults_seen"):
                conn.parley_faults_seen = self._faults  # type: ignore[attr-defined]
            if conn.parley_faults_seen == self._faults:  # type: ignore[attr-defined]
                return conn
            conn.close()
            self.pool.put_connection(conn)


class ParleySQLiteFactory(SQLiteFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        configured = self.datastore
        self.datastore = RenewingSQLiteDatastore(
            db_name=configured.pool.db_name,
            lock_timeout=configured.pool.lock_timeout,
            single_row_tracking=configured.single_row_tracking,
            originator_id_type=configured.originator_id_type,  # type: ignore[arg-type]
        )
        configured.close()


class ParleyPostgresFactory(PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.datastore.pool.reconnect_timeout = RECONNECT_GIVE_UP_SECONDS
